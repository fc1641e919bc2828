"""The local store: one SQLite file (WAL) behind small repositories.

Replaces the Go DMS's clover collections that matter for a running node (``onboarding_config``,
committed/allocated resources, ``deployments``) plus the bids Go keeps in memory and the public
ports leased to allocations, and the records of the allocations this node runs. Open the
file with :meth:`Database.open` (creates it 0600, migrates the schema atomically, refuses a
newer schema) and hand it to the repositories. Every call is blocking and short; from trio
code call it through ``trio.to_thread.run_sync``. One
:class:`Database` may be shared by any number of threads. Values whose shape belongs to another
layer (resources, manifests, bids) are JSON text, so this package imports nothing above it.
"""

from dms.db._allocations import STATUSES as ALLOCATION_RECORD_STATUSES
from dms.db._allocations import AllocationRecord, AllocationRepo
from dms.db._bids import BidRecord, BidRepo
from dms.db._database import DEFAULT_BUSY_TIMEOUT, DEFAULT_FILE_NAME, Database, Synchronous
from dms.db._deployments import DeploymentRecord, DeploymentRepo
from dms.db._errors import ConflictError, DatabaseError, SchemaVersionError
from dms.db._migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from dms.db._onboarding import OnboardingConfig, OnboardingRepo
from dms.db._ports import PortLease, PortRepo
from dms.db._resources import Allocated, Commitment, ResourceRepo

__all__ = [
    "ALLOCATION_RECORD_STATUSES",
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_FILE_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Allocated",
    "AllocationRecord",
    "AllocationRepo",
    "BidRecord",
    "BidRepo",
    "Commitment",
    "ConflictError",
    "Database",
    "DatabaseError",
    "DeploymentRecord",
    "DeploymentRepo",
    "Migration",
    "OnboardingConfig",
    "OnboardingRepo",
    "PortLease",
    "PortRepo",
    "ResourceRepo",
    "SchemaVersionError",
    "Synchronous",
]
