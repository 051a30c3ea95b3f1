"""The HTTP surface: the app, its routes, middleware, OpenAPI, access log and metrics."""
