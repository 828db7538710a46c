"""Test support: fakes of the services wabroadcast talks to, served over real HTTP."""
