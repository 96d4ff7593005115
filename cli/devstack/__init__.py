"""The platform on one machine: embedded PostgreSQL and Kafka-protocol broker, and the
supervisor behind `exness up`."""
