"""Swagger UI for the OpenAPI document, served entirely by the gateway."""
