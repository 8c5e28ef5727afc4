"""An ACME engine on pebble (started lazily once per test process)."""

from tests.acme_pebble import CONTRACT_DNS_NAMES, CONTRACT_GAPS, contract_engine

NAME = "acme-pebble"
REQUEST_DNS_NAMES = CONTRACT_DNS_NAMES
EMULATOR_GAPS = CONTRACT_GAPS  # {"pkix_profile"}: pebble 2.4 puts keyEncipherment on EC leaves
make_engine = contract_engine
