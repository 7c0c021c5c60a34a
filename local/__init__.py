"""The local cloud: emulators, function processes and the Pub/Sub topology on one machine."""
