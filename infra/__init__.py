"""Local infrastructure for developers and CI: Kafka, Redis and PostgreSQL as plain processes."""
