"""Logging in with OAuth (a device code, as `aipk login qwen` does), then using the account:
the access token is refreshed when the provider rejects it, and the call goes through.

Runs offline: the emulator also serves an OAuth authorization server under /oauth, and a
loopback base URL sends the whole login there instead of to the provider.
"""

import tempfile
from pathlib import Path

import aipk
from aipk.credentials import (
    FileTokenStore,
    OAuthClient,
    OAuthManager,
    login,
    login_flow,
)
from aipk_testkit.emulator import Emulator, Reply, oauth_server

with Emulator() as emulator, tempfile.TemporaryDirectory() as folder:
    oauth = oauth_server(emulator)
    oauth.device_interval = 0.01  # the provider's polling interval, short for the example
    oauth.script_device("authorization_pending", outcome="approve")
    emulator.require_api_keys(oauth=True)  # only tokens the OAuth server issued are accepted
    emulator.set_default(Reply(text="hello, signed-in user"))

    flow = login_flow("qwen").rebased(emulator.base_url + "/oauth")
    credential = login(flow, credential_id="laptop",
                       show=lambda device: print("enter code", device.user_code))
    store = FileTokenStore(Path(folder) / "qwen.json")
    store.save(credential)
    print("logged in as", credential.id, "- token saved:", store.path.exists())

    manager = OAuthManager.from_store("qwen", store, refresh=OAuthClient(flow.endpoints).refresh)
    with aipk.Client("qwen", base_url=emulator.url("openai"), credentials=manager) as client:
        print("answer:", client.chat(messages=[aipk.Message.user("hi")]).text)
        oauth.expire_access_tokens()  # the provider now rejects the token with a 401
        print("answer:", client.chat(messages=[aipk.Message.user("hi")]).text)
    print("refreshes:", oauth.grants["refresh_token"])
