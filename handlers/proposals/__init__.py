"""The Ketua RT's proposals: the /usulan wizard, /draf and /usulanku."""

from aiogram import Router

from handlers.proposals import mine, wizard

router = Router(name=__name__)
router.include_routers(mine.router, wizard.router)
