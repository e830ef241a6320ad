"""The owners' projects."""

from ..billing.ledger import LedgerStore
from ..clock import Clock
from ..domain import pagination
from ..domain import validation as v
from ..domain.errors import NotFound
from ..domain.models import Page, Project
from ..domain.owners import Owner

MAX_CACHED = 100_000


class Projects:
    def __init__(self, ledger: LedgerStore, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock
        # A project never changes owner and is never deleted: who owns one,
        # once read, stays true (metered calls naming a project read it here).
        self._owners: dict[tuple[int, str], str] = {}

    async def upsert(
        self, operator_id: int, project_id: str, name: str, owner: Owner
    ) -> tuple[Project, bool]:
        return await self._ledger.upsert_project(
            operator_id,
            v.tenant_id("project_id", project_id),
            v.name("name", name),
            owner.key,
            self._clock.now(),
        )

    async def get(self, operator_id: int, project_id: str) -> Project:
        return await self._ledger.get_project(operator_id, v.tenant_id("project_id", project_id))

    async def list(
        self, operator_id: int, owner: Owner, page_size: int, page_token: str
    ) -> Page[Project]:
        return await self._ledger.list_projects(
            operator_id,
            owner.key,
            pagination.decode("page_token", page_token),
            v.page_size("page_size", page_size),
        )

    async def owner_key(self, operator_id: int, project_id: str) -> str:
        """The key of the project's owner; NotFound for an unknown project."""
        cached = self._owners.get((operator_id, project_id))
        if cached is not None:
            return cached
        project = await self.get(operator_id, project_id)
        if len(self._owners) >= MAX_CACHED:
            self._owners.clear()
        self._owners[operator_id, project_id] = project.owner_key
        return project.owner_key

    async def of_owner(self, operator_id: int, owner: Owner, project_id: str) -> str | None:
        """`project_id` checked to be the owner's (None when empty): another
        owner's project is NOT_FOUND, as an unknown one."""
        if not project_id:
            return None
        v.tenant_id("project_id", project_id)
        if await self.owner_key(operator_id, project_id) != owner.key:
            raise NotFound("project", project_id)
        return project_id
