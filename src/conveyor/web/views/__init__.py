"""The back-office pages, one module per area (see `conveyor.web` for how to add one)."""
