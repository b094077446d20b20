"""Enrolls one device with a code and prints its bearer token and device id.

Used by scripts/api-property-test.sh:
    python3 scripts/api_property_enroll.py URL CODE PUBLIC_KEY_HEX NAME

The public key only has to be a valid Ed25519 key: nothing is signed with
it during the property test, so the script takes a published test key.
"""

import json
import sys
import urllib.request


def main() -> int:
    url, code, public_key, name = sys.argv[1:5]
    body = json.dumps(
        {"code": code, "device_name": name, "public_key": public_key}
    ).encode()
    req = urllib.request.Request(
        url.rstrip("/") + "/v1/enroll",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    print(answer["token"], answer["device_id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
