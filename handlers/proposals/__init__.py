"""The Ketua RT's proposals: the /usulan wizard, /draf, /usulanku and each proposal's card."""

from aiogram import Router

from handlers.proposals import card, mine, wizard

router = Router(name=__name__)
router.include_routers(mine.router, card.router, wizard.router)
