"""The HTTP API: `create_app` in `stripemeter.api.app`, one router module per resource."""
