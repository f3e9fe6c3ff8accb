"""The sandbox plays the phone network: a Twilio-like phone that calls a voice webhook and
talks Twilio Media Streams, and Twilio's REST API to hang its calls up.

Parts, one job each:

- ``phone``: a phone placing one inbound call (``Phone``, ``PhoneOptions``, ``CallReport``);
  ``webhook`` posts Twilio's voice webhook, ``twiml`` reads the answer, ``stream`` talks the
  Media Stream it connects (``media_streams``: the messages), ``mouth`` and ``earpiece``
  are its two ends of the audio, ``voice`` what it can say, ``mulaw`` the codec,
  ``signature`` ``X-Twilio-Signature``, ``transcripts`` where it declares what it says.
- ``network``: the calls in progress (``PhoneNetwork``, a ``Sandbox``'s ``phones``);
  ``rest`` Twilio's REST API for them; ``lines`` the phone lines that put a phone of
  another process on a sandbox's network; ``routes`` mounts both on the sandbox's app.
- ``command``: ``callfleet phone``.

Pointing a server at it, with the sandbox on ``http://127.0.0.1:PORT`` (``Sandbox.base_url``):
Twilio's API base URL is that base URL (calls at
``/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``), so Pipecat hangs the call up
there with::

    TwilioFrameSerializer(stream_sid, call_sid, account_sid=ACCOUNT_SID, auth_token="any",
                          base_url="http://127.0.0.1:PORT")

The account is ``network.ACCOUNT_SID`` (the webhook's ``AccountSid``) unless the phone is
given another; any auth token is taken unless ``PhoneNetwork.auth_token`` is set.
"""
