"""Wyoming text-to-speech server: Piper and Kokoro backends behind one protocol handler."""
