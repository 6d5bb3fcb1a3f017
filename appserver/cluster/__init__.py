"""A cluster of appserver nodes on one PostgreSQL (issue 16 step 3; docs/operations.md
"Running a cluster"). Nothing here runs unless the server is started with a
postgresql:// store and a node id (`ServerConfig.cluster`).

- db.py: the node's control connection (leases, heartbeat, calls, NOTIFY) and its
  session token
- leases.py: the lease SQL (take, renew, release, who owns)
- listen.py: the one LISTEN connection, dispatching notifications
- follow.py: a thread owned elsewhere, followed from the event log for local subscribers
- calls.py: owner-only requests forwarded to the owner, served there by a relay
- bus.py: event NOTIFYs, broadcasts between nodes, the LISTEN dispatch
- start.py: opening a node, wiring it into the server
- node.py: the composition (Ownership for the registry, routing for the handlers,
  heartbeat and self-fencing, failover, lifecycle broadcasts)
"""

from appserver.cluster.node import Node
from appserver.cluster.start import join_cluster, open_node

__all__ = ["Node", "join_cluster", "open_node"]
