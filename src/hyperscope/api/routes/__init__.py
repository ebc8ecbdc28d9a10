"""One routes module per resource family; each route parses, calls the service and returns."""
