"""Publish-subscribe (XEP-0060): the engine shared by the pubsub.<host> service and PEP (XEP-0163)."""
