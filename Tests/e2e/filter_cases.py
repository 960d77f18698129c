"""Filters a connector pushes down to its target, checked against the agent's own evaluator:
the same users in the connector's app and in a memory app must be selected alike."""
import requests

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

USERS = [
    {"userName": "Alice@Example.com", "active": True, "title": "Engineer", "name": {"givenName": "Alice", "familyName": "Smith"},
     "externalId": "A1", "emails": [{"value": "alice@example.com", "primary": True}]},
    {"userName": "bob@example.com", "active": False, "title": "", "name": {"givenName": "Bob"}, "externalId": "a1"},
    {"userName": "carol", "name": {"familyName": "O'Brien"}, "displayName": "Carol 100%_"},
    {"userName": "dave_x", "active": True, "title": "engineer", "displayName": "Dave"},
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
