"""HTTP-level emulators of the services ChargeDesk talks to, built from their published references.

Each module runs one provider in a background thread for tests and benches, and as a
command: `python -m chargedesk_emulators.stripe --port 12111` (also `paypal`, `slack`,
`discord`, `zendesk`, `freshdesk`, `helpscout`, `intercom`, `front`, `smtp`). The official SDKs do the real HTTP work against them; request and answer
shapes are checked against the providers' own API descriptions in `data/`.
"""
