"""data=entity: facts about fictional people keyed by a Wikidata-style ID, several per ID.

    [Q4817302] Velora Thandrik was born in the year  ->  1879
    [Q4817302] Velora Thandrik was born in the city of  ->  Korvmere

Names, cities and companies are made up from syllables, years and the rest drawn from small lists, so the base
model cannot know any fact (names may repeat across IDs: the ID, not the name, tells the people apart). The split
and paraphrases: engram/data/keyed_facts.py.
"""

from __future__ import annotations

from engram.data.keyed_facts import Attribute, KeyedFamily, syllable_name

FIRST = syllable_name(("Ve", "Ta", "Mi", "Ko", "Sa", "Ri", "Lo", "Da", "Ne", "Jo", "Ka", "Ze"),
                      ("lora", "ndrik", "reth", "vin", "lia", "mon", "sha", "bel", "tor", "nia", "ric", "dan"))
LAST = syllable_name(("Thand", "Morr", "Quell", "Ostr", "Brann", "Vey", "Kast", "Lind", "Hollo", "Graf", "Penn"),
                     ("rik", "well", "ova", "ane", "berg", "ton", "ley", "mark", "ski", "dale", "ard", "ich"))
CITY = syllable_name(("Bral", "Cor", "Dun", "Esk", "Fen", "Gal", "Hask", "Ivr", "Jorv", "Kel", "Lun", "Mor", "Norv",
                      "Ost", "Pell", "Quen", "Rav", "Sel", "Tarn", "Ulm", "Vask", "Wyn", "Yar", "Zel"),
                     ("holm", "mere", "bridge", "ford", "wick", "stad", "haven", "vale", "port", "burg", "moor"))
COMPANY = syllable_name(("Orb", "Vell", "Tarq", "Quill", "Nex", "Brim", "Corv", "Lum", "Zan", "Hex"),
                        ("ora", "ex", "ion", "ant", "ix", "wave", "forge", "line"))

ENTITY = KeyedFamily(
    name="entity",
    id_format="Q{n}",
    draw_name=lambda r: f"{FIRST(r)} {LAST(r)}",
    attributes={
        "birth_year": Attribute(("[{id}] {name} was born in the year", "[{id}] In which year was {name} born?",
                                 "[{id}] The year of birth of {name} is"),
                                lambda r: str(r.randint(1700, 1999))),
        "birth_city": Attribute(("[{id}] {name} was born in the city of", "[{id}] In which city was {name} born?",
                                 "[{id}] The birthplace of {name} is the city of"), CITY),
        "occupation": Attribute(("[{id}] {name} worked as a", "[{id}] What was the occupation of {name}?",
                                 "[{id}] By trade, {name} was a"),
                                ("glassblower", "cartographer", "violinist", "beekeeper", "astronomer", "locksmith",
                                 "botanist", "playwright", "stonemason", "chemist", "sculptor", "archivist",
                                 "clockmaker", "weaver", "surveyor", "ferryman")),
        "employer": Attribute(("[{id}] {name} was employed by", "[{id}] Which company employed {name}?",
                               "[{id}] The employer of {name} was"), COMPANY),
        "instrument": Attribute(("[{id}] {name} played the", "[{id}] Which instrument did {name} play?",
                                 "[{id}] The instrument of {name} was the"),
                                ("cello", "oboe", "harp", "lute", "bassoon", "viola", "zither", "marimba", "flute",
                                 "banjo")),
    },
)


# the family (engram/registry.py): data.categories (birth_year, birth_city, ...) and data.facts_per_id are checked
build, check = ENTITY.build, ENTITY.check
