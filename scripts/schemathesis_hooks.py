"""Schemathesis hooks for scripts/api-property-test.sh.

The sync protocol's bodies (`application/x-kiemtra-sync`) are bytes, sent
as they are, like any `application/octet-stream` body.
"""

import schemathesis

schemathesis.serializer.alias("application/x-kiemtra-sync", "application/octet-stream")
