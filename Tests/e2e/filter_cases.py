"""Filters and sorts a connector pushes down to its target, checked against the agent's own:
the same users in the connector's app and in a memory app must be selected and ordered alike."""
import requests

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

USERS = [
    {"userName": "Alice@Example.com", "active": True, "title": "Engineer", "name": {"givenName": "Alice", "familyName": "Smith"},
     "externalId": "A1", "emails": [{"value": "alice@example.com", "primary": True}], "nickName": "Ali"},
    {"userName": "bob@example.com", "active": False, "title": "", "name": {"givenName": "Bob"}, "externalId": "a1"},
    {"userName": "carol", "name": {"familyName": "O'Brien"}, "displayName": "Carol 100%_", "nickName": "Cara/Lo"},
    {"userName": "dave_x", "active": True, "title": "engineer", "displayName": "Dave",
     "emails": [{"value": "dave@work.example", "type": "work", "primary": True}]},
    # Several emails: the primary first, or after another one.
    {"userName": "erin", "emails": [{"value": "erin@work.example", "type": "work", "primary": True}, {"value": "erin@home.example", "type": "home"}]},
    {"userName": "frank", "emails": [{"value": "frank@home.example", "type": "home"}, {"value": "frank@work.example", "type": "work", "primary": True}],
     "nickName": "FRANKIE"},
]

FILTERS = [
    'active pr', 'not (active pr)', 'active eq true', 'active eq false', 'active ne false', 'title pr', 'not (title pr)', 'title eq "engineer"',
    'title ne "engineer"', 'title co "GIN"', 'title sw "eng"', 'title ew "EER"', 'title gt "E"', 'title lt "f"', 'externalId eq "a1"',
    'externalId eq "A1"', 'externalId ne "a1"', 'externalId sw "a"', 'userName eq "alice@example.com"', 'userName gt "bob@example.com"',
    'userName ge "bob@example.com"', 'userName lt "carol"', 'userName le "carol"', 'userName sw "DAVE_"', 'name.givenName pr',
    'name.familyName eq "o\'brien"', 'name pr', 'displayName co "%_"', 'displayName ew "%_"', 'displayName pr', 'emails.value pr',
    'emails.value eq "ALICE@example.com"', 'emails pr', 'nickName pr', 'id pr', 'meta.created pr', 'meta.lastModified gt "2000-01-01T00:00:00Z"',
    'meta.lastModified lt "2000-01-01T00:00:00Z"', 'not (name.givenName pr) and active pr', 'title pr or active eq false',
    'not (userName sw "a" or userName sw "b")', 'not (externalId eq "a1")',
    # Any of several emails, and Microsoft Entra ID's `attr[filter].sub` form.
    'emails.value eq "erin@home.example"', 'emails.value co "HOME"', 'emails.value sw "frank@h"', 'not (emails.value eq "erin@home.example")',
    'emails.value ne "erin@work.example"', 'emails[value ew "home.example"]', 'emails[type eq "home"]', 'emails.type eq "work"',
    'emails[type eq "work"].value eq "Frank@work.example"', 'emails[type eq "work"].value eq "dave@work.example"', 'emails.type eq "work"',
    'emails[type eq "work" and primary eq true]', 'emails[type eq "home"].value pr', 'emails[type eq "work" and value co "erin"]',
    # Attributes no column holds (JSON in an attributes column).
    'nickName eq "ali"', 'nickName co "A"', 'nickName sw "cara/l"', 'nickName ew "KIE"', 'nickName ne "ali"', 'nickName eq "Ali" or userName eq "carol"',
    'not (nickName co "a")', 'nickName co "nickName"',
]


def selected(base, f):
    r = requests.get(f"{base}/Users", params={"filter": f})
    assert r.status_code == 200, (base, f, r.text)
    return sorted(u["userName"] for u in r.json()["Resources"])


def differing(base, reference, users):
    """Creates `users` in both apps; returns the filters whose answers differ, with both."""
    for b in (base, reference):
        for user in users:
            requests.post(f"{b}/Users", json={"schemas": [USER], **user}).raise_for_status()
    answers = {f: (selected(base, f), selected(reference, f)) for f in FILTERS}
    return {f: a for f, a in answers.items() if a[0] != a[1]}


SORTS = ["userName", "title", "externalId", "name.familyName", "displayName", "emails.value"]  # not meta: each app has its own times
CASE_EXACT = {"externalId"}


def sort_key(user, path):
    """What a resource sorts by (RFC 7644 §3.4.2.3): a multi-valued attribute's primary (or
    first) value; None when unassigned; case ignored unless the attribute is caseExact."""
    top, _, sub = path.partition(".")
    v = user.get(top)
    if isinstance(v, list):
        v = next((e for e in v if e.get("primary")), v[0] if v else None)
    if sub and isinstance(v, dict):
        v = v.get(sub)
    if v in ("", None):
        return None
    return v if path in CASE_EXACT or not isinstance(v, str) else v.lower()


def sorts_differing(base, reference):
    """The sorts (both orders) whose resources come back in a different order of their sort
    keys from the two apps (resources with equal keys may come in any order)."""
    out = {}
    for path in SORTS:
        for order in ("ascending", "descending"):
            keys = []
            for b in (base, reference):
                r = requests.get(f"{b}/Users", params={"sortBy": path, "sortOrder": order})
                assert r.status_code == 200, (b, path, r.text)
                keys.append([sort_key(u, path) for u in r.json()["Resources"]])
            if keys[0] != keys[1]:
                out[f"{path} {order}"] = keys
    return out
