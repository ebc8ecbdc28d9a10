from tests.api.conftest import client, world  # noqa: F401  (the API's world: a store the simulator fed, keys)
