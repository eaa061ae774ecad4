"""The rotating binding codes of testvectors/binding-v1.json recomputed from
the formula in docs/protocol.md ("Channel binding from the login screen")."""

import protocol


def test_every_rotating_code_follows_the_documented_hmac(binding_vectors):
    assert binding_vectors["domain"].encode("ascii") == protocol.BINDING_DOMAIN
    assert binding_vectors["step_ms"] == 1000
    assert len(binding_vectors["vectors"]) >= 7
    for v in binding_vectors["vectors"]:
        step, mac, code = protocol.binding_code_at(bytes.fromhex(v["secret_hex"]), v["unix_ms"])
        assert step == v["step"]
        assert mac.hex() == v["hmac_sha256_hex"]
        assert code == v["code"] and len(code) == 8
        assert v["qr_payload"] == "eid-bind:v1:" + code


def test_the_code_changes_at_the_second_and_not_within_it():
    secret = bytes(range(32))
    assert protocol.binding_code_at(secret, 5_000)[2] == protocol.binding_code_at(secret, 5_999)[2]
    assert protocol.binding_code_at(secret, 5_999)[2] != protocol.binding_code_at(secret, 6_000)[2]
