"""Storage and streams shared by the services: the PostgreSQL pool, migrations and Kafka."""
