"""Gives the server of the property test something to answer with.

As the administrator enrolled with RFC 8032's first test key (whose private
key is published, so this script can sign), appends signed entries to the
administration log: a province and a unit with its roster, an inspector and
a supervisor in a team, the standard template, a campaign and one
assignment, from which the server creates the visit `dot-1.so-noi-vu.seed`.
The property test then reads real users, teams, templates, campaigns and a
real visit, and checks them against the document.

    python3 scripts/api_property_seed.py URL ADMIN_TOKEN ADMIN_DEVICE_ID

Needs the `cryptography` package (installed in the test's virtual environment).
"""

import datetime
import json
import pathlib
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# RFC 8032, 7.1, TEST 1: the secret key of public key d75a9801…511a.
SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
CONTEXT = b"kiemtra-admin-log-v1\n"
VISIT = "dot-1.so-noi-vu.seed"


def canonical(value) -> bytes:
    """JSON as serde_json writes it: no spaces, UTF-8, keys in the order given."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def call(url, token, method, path, body=None):
    req = urllib.request.Request(
        url + path,
        data=None if body is None else canonical(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        sys.exit(f"seed: {method} {path}: {e.code} {e.read().decode(errors='replace')}")


def acts(template_json: str):
    day = "2020-01-01"
    template = json.loads(template_json)
    yield {"type": "areas_imported", "areas": [
        {"code": "can-tho", "name": "Thành phố Cần Thơ", "tier": "province", "valid_from": day},
    ]}
    yield {"type": "units_imported", "units": [
        {"code": "so-noi-vu", "name": "Sở Nội vụ", "kind": "department", "area": "can-tho",
         "valid_from": day},
    ]}
    yield {"type": "roster_published", "unit": "so-noi-vu", "valid_from": day, "staff": [
        {"id": "nv-1", "name": "Nguyễn Văn An", "position": "Chuyên viên",
         "category": "civil_servant", "on_payroll": True, "found_on_site": False},
        {"id": "nv-2", "name": "Trần Thị Bình", "category": "leader", "on_payroll": True,
         "found_on_site": False},
    ]}
    yield {"type": "user_created", "user_id": "kiem-tra-an", "full_name": "Lê Thị Ân",
           "role": "inspector"}
    yield {"type": "user_created", "user_id": "truong-doan", "full_name": "Trần Văn Đoàn",
           "role": "supervisor"}
    yield {"type": "team_created", "team_id": "doan-1", "name": "Đoàn kiểm tra số 1"}
    yield {"type": "team_members", "team_id": "doan-1", "leaders": ["truong-doan"],
           "members": ["truong-doan", "kiem-tra-an"]}
    yield {"type": "template_published", "template_id": template["id"],
           "version": template["version"], "json": template_json}
    yield {"type": "campaign_created", "campaign_id": "dot-1", "title": "Đợt kiểm tra 1",
           "decision": "Quyết định 1/QĐ-UBND", "starts_on": "2026-01-01",
           "ends_on": "2026-12-31", "province": "can-tho", "template_id": template["id"],
           "template_version": template["version"], "teams": ["doan-1"]}
    yield {"type": "assigned", "campaign_id": "dot-1", "team_id": "doan-1",
           "unit": "so-noi-vu", "planned_on": "2026-06-01", "visit_id": VISIT}


def main() -> int:
    url, token, device_id = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    key = Ed25519PrivateKey.from_private_bytes(SECRET)
    root = pathlib.Path(__file__).resolve().parent.parent
    template = (root / "fixtures/templates/standard-v1.json").read_text(encoding="utf-8")
    head = call(url, token, "GET", "/v1/admin/log")["head"]
    for act in acts(template):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        at = max(now, head["at"])
        entry = {"seq": head["seq"] + 1, "prev": head["hash"], "at": at,
                 "by": {"kind": "device", "device_id": device_id}, "act": act}
        entry["signature"] = key.sign(CONTEXT + canonical(entry)).hex()
        head = call(url, token, "POST", "/v1/admin/log", {"entries": [entry]})
    print(VISIT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
