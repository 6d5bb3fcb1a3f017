// JSON-RPC 2.0 over one websocket (PROTOCOL.md §1): requests, notifications, and the
// server's own requests (approvals), which the page answers with `respond`.

const SUBPROTOCOL = "appserver";
const BEARER = "appserver.bearer.";

export class RpcError extends Error {
  constructor(error) {
    super(error.message || "request failed");
    this.code = error.code;
    this.data = error.data;
  }
}

function base64url(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export class Rpc {
  // Resolves once the websocket is open; rejects if the handshake is refused.
  static open(url, token) {
    // The token travels as a subprotocol (a browser cannot set Authorization on a
    // websocket); the server selects the plain "appserver" protocol.
    const protocols = token ? [BEARER + base64url(token), SUBPROTOCOL] : [SUBPROTOCOL];
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols);
      const failed = () => reject(new Error("the server refused the connection"));
      ws.addEventListener("error", failed, { once: true });
      ws.addEventListener("open", () => {
        ws.removeEventListener("error", failed);
        resolve(new Rpc(ws));
      }, { once: true });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.pending = new Map();
    this.onNotification = () => {};
    this.onRequest = () => {};
    this.onClose = () => {};
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", () => {
      for (const { reject } of this.pending.values()) reject(new Error("connection closed"));
      this.pending.clear();
      this.onClose();
    });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.method !== undefined && message.id !== undefined) {
      this.onRequest(message.id, message.method, message.params || {});
    } else if (message.method !== undefined) {
      this.onNotification(message.method, message.params || {});
    } else if (this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) reject(new RpcError(message.error));
      else resolve(message.result);
    }
  }

  send(message) {
    if (this.ws.readyState !== WebSocket.OPEN) throw new Error("not connected");
    this.ws.send(JSON.stringify({ jsonrpc: "2.0", ...message }));
  }

  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.send({ id, method, params });
      } catch (error) {
        this.pending.delete(id);
        reject(error);
      }
    });
  }

  notify(method, params) {
    this.send(params === undefined ? { method } : { method, params });
  }

  respond(id, result) {
    this.send({ id, result });
  }

  close() {
    this.ws.close(1000);
  }
}
