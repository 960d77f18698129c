"""The peer for `make bench`: scim2-server's in-memory store under uvicorn + httptools, one worker."""
import sys

import uvicorn
from scim2_models import ScimProvider
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.utils import load_default_resource_types, load_default_schemas, load_default_service_provider_config

try:
    from scim2_server.memory import AsyncInMemoryStorage as Storage
except ImportError:
    from scim2_server.memory import InMemoryStorage as Storage

provider = ScimProvider.from_discovery(
    load_default_schemas().values(), load_default_resource_types().values(), config=load_default_service_provider_config())
app = ASGIApplication(Storage(), provider)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=1, http="httptools", log_level="warning", access_log=False)
