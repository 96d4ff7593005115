"""The service kit: what every gRPC service of the platform shares.

settings (environment), logs (structured logging), errors (domain errors -> google.rpc.Status),
validation (declared field rules), identity (access-token verification and the caller),
interceptors (the request pipeline), server (grpc.aio start-up, health, reflection, graceful
shutdown), db (psycopg pool), postgres (embedded PostgreSQL), migrations, kafka, broker
(embedded Kafka-protocol broker) and decimals (money/price/volume parsing).
"""
