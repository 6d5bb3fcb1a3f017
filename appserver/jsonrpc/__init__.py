"""Sans-IO JSON-RPC: decode text into events, encode messages, track pending requests."""

from appserver.jsonrpc.codec import (
    ErrorResponse,
    Event,
    Invalid,
    Notification,
    Outbound,
    Request,
    RequestId,
    Response,
    decode,
    dumps,
    encode_error,
    encode_notification,
    encode_request,
    encode_response,
    is_request_id,
)
from appserver.jsonrpc.pending import PendingRequest, PendingTable, next_server_request_id

__all__ = [
    "ErrorResponse",
    "Event",
    "Invalid",
    "Notification",
    "Outbound",
    "PendingRequest",
    "PendingTable",
    "Request",
    "RequestId",
    "Response",
    "decode",
    "dumps",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_response",
    "is_request_id",
    "next_server_request_id",
]
