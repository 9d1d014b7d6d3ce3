"""The consumer base: apply events idempotently (inbox), in order (seq), and finally
(tombstones), from RabbitMQ or from the HTTP transport's endpoint."""
