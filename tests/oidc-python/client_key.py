"""Makes a client's key pair for private_key_jwt, as a service provider's
developer does once: the private key as PKCS#8 PEM (readable by its owner
only) and the public JWK to register with
`eid admin register-oidc-client --jwk-file`.

    python client_key.py PRIVATE_KEY.pem PUBLIC.jwk
"""

import json
import os
import sys

from joserfc.jwk import ECKey


def main(private_path, public_path):
    key = ECKey.generate_key("P-256", private=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.as_pem(private=True))
    with open(public_path, "w", encoding="utf-8") as f:
        json.dump(key.as_dict(private=False), f)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
