"""Messaging on NATS JetStream: envelope, streams, transactional outbox, idempotent inbox."""
