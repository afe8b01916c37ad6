"""Third-party OAuth clients against a running Warden (driven by
crates/warden-server/tests/python_clients.rs, which sets up the organization and passes
this script its settings as JSON on stdin).

authlib:  client credentials with private_key_jwt (EdDSA); the authorization code flow
          with PKCE through the real sign-in and consent pages; token exchange.
pyjwt:    verifies every access token from the JWKS alone.
Exits non-zero on the first failed expectation.
"""

import json
import re
import sys
from urllib.parse import parse_qs, urlparse

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import OKPKey

cfg = json.load(sys.stdin)
base = cfg["base"]
token_endpoint = f"{base}/oauth2/token"
jwks = jwt.PyJWKClient(f"{base}/oauth2/jwks")


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def verify(token, audience=base):
    """pyjwt, with nothing but the published JWKS."""
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["EdDSA"], audience=audience, issuer=base)


def decide(token, obj):
    r = requests.post(
        f"{base}/v1/orgs/{cfg['org']}/authorize",
        headers={"Authorization": f"Bearer {cfg['api_key']}"},
        json={"token": token, "relation": "viewer", "object": obj},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["allowed"]


# Discovery.
meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
check(meta["issuer"] == base and meta["token_endpoint"] == token_endpoint, "metadata")

# 1. Client credentials, authenticated with private_key_jwt (EdDSA).
key = OKPKey.import_key(cfg["bot_private_jwk"])
bot = OAuth2Session(cfg["bot_client_id"], key, token_endpoint_auth_method="private_key_jwt")
bot.register_client_auth_method(PrivateKeyJWT(token_endpoint, alg="EdDSA"))
bot_token = bot.fetch_token(token_endpoint, grant_type="client_credentials")
claims = verify(bot_token["access_token"])
check(claims["sub"] == "agent:bot" and claims["scope"] == "docs.read", "private_key_jwt token verified by pyjwt")
check(decide(bot_token["access_token"], "document:1"), "the agent's own token decides")

# 2. Authorization code + PKCE through the real pages.
verifier = generate_token(64)
helper = OAuth2Session(
    cfg["helper_client_id"],
    cfg["helper_secret"],
    redirect_uri=cfg["redirect_uri"],
    scope="docs.read",
    code_challenge_method="S256",
)
url, state = helper.create_authorization_url(f"{base}/oauth2/authorize", code_verifier=verifier)
browser = requests.Session()
page = browser.get(url, timeout=10, allow_redirects=False)
check(page.status_code == 200 and "Sign in" in page.text, "sign-in page")
ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
page = browser.post(
    f"{base}/oauth2/authorize/signin",
    data={"ticket": ticket, "username": cfg["username"], "password": cfg["password"]},
    timeout=10,
    allow_redirects=False,
)
check(page.status_code == 200 and "docs.read" in page.text, "consent page names the scope")
ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
done = browser.post(
    f"{base}/oauth2/authorize/consent",
    data={"ticket": ticket, "decision": "approve"},
    timeout=10,
    allow_redirects=False,
)
location = done.headers["location"]
params = parse_qs(urlparse(location).query)
check(params["state"][0] == state and params["iss"][0] == base, "redirect carries state and iss")
user_token = helper.fetch_token(token_endpoint, authorization_response=location, code_verifier=verifier)
claims = verify(user_token["access_token"])
check(claims["sub"] == f"user:{cfg['username']}" and "refresh_token" in user_token, "code flow token")
check(decide(user_token["access_token"], "document:1"), "user token decides (user and agent hold it)")
check(not decide(user_token["access_token"], "document:2"), "user token denied where the user lacks it")
# A reused code is refused.
reuse = requests.post(
    token_endpoint,
    auth=(cfg["helper_client_id"].replace(":", "%3A"), cfg["helper_secret"]),
    data={"grant_type": "authorization_code", "code": params["code"][0],
          "redirect_uri": cfg["redirect_uri"], "code_verifier": verifier},
    timeout=10,
)
check(reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant", "reused code refused")

# 3. Token exchange: the bot acts for the user through the helper's grant.
exchanged = bot.fetch_token(
    token_endpoint,
    grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
    subject_token=user_token["access_token"],
    subject_token_type="urn:ietf:params:oauth:token-type:access_token",
    actor_token=bot_token["access_token"],
    actor_token_type="urn:ietf:params:oauth:token-type:access_token",
)
claims = verify(exchanged["access_token"])
check(claims["act"] == {"sub": "agent:bot", "act": {"sub": "agent:helper"}}, "act chain nested")
check(decide(exchanged["access_token"], "document:1"), "delegated token decides")
print("all passed")
