# --8<-- [start:example]
"""Kafka: connection options for a real cluster (SASL over SSL); nothing connects here."""

import os

from tideflow.streaming.connectors import KafkaSink, KafkaSource

secure = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": os.environ.get("KAFKA_USER", "enricher"),
    "sasl_plain_password": os.environ.get("KAFKA_PASSWORD", "s3cret-value"),
    "ssl_cafile": "/etc/kafka/ca.pem",  # also ssl_certfile, ssl_keyfile, ssl_password (mTLS)
}
servers = ["b-1.kafka.example.com:9096", "b-2.kafka.example.com:9096"]
source = KafkaSource(
    topics=["clicks"],
    bootstrap_servers=servers,
    group_id="clicks-enricher",
    value_format="json",
    client_options=secure,
)
sink = KafkaSink(
    topic="clicks-enriched",
    bootstrap_servers=servers,
    value_format="json",
    transactional=True,
    client_options=secure,
)
print(source)  # secrets are never shown in reprs, logs or errors
assert secure["sasl_plain_password"] not in repr(source) + repr(sink)
# --8<-- [end:example]
