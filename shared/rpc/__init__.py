"""The gRPC shim: whispr.messaging.v1.MessagingService over the same use cases as REST and the relay."""
