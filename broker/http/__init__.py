"""The bridge's HTTP front: an ASGI app (FastAPI on uvicorn) beside the MQTT front.

`app` builds the app (health, metrics, models, auth, errors, CORS, body limits) and
`server` runs it inside the bridge's event loop; `audio_codec` reads uploaded audio files
and encodes speech as it is made; `transcript_formats` renders transcripts the way
OpenAI's API does. The routes that drive sessions are added on top of these.
"""
