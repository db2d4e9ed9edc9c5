"""Several Parlour nodes as one service: a session registry and inter-node queues in Redis.

PostgreSQL holds everything stored (the same stores as one node); Redis holds what the running nodes
share: which node holds which session (`registry`), each node's heartbeat (`node`), and one stream per
node that carries the stanzas for its sessions (`queues`). Built and started by appliance/app only.
"""
