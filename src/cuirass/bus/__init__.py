"""The fleet's event bus: an interface, with NATS JetStream the implementation (docs/fleet.md)."""
