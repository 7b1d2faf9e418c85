"""The sample's catalogue: invented products with prices and popularity, non-product codes, gift vouchers and
the stock-adjustment notes.

Product descriptions are built from word lists (colours, motifs, items) in a few forms, like the real file's
(``WHITE HEART T-LIGHT HOLDER``, ``SET OF 4 ROSE NAPKINS``); a family of codes (``85123A``, ``85123B``) shares a
form and differs in colour. Every entry is kept as CSV-ready ``StockCode,Description`` text in ISO-8859-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insiders.sample.non_products import GIFT_VOUCHER_VAT, GIFT_VOUCHERS, NON_PRODUCTS

_COLOURS = (
    "WHITE",
    "RED",
    "PINK",
    "BLUE",
    "GREEN",
    "IVORY",
    "CREAM",
    "BLACK",
    "SILVER",
    "GOLD",
    "PURPLE",
    "ORANGE",
    "YELLOW",
    "PASTEL",
    "RETRO",
    "VINTAGE",
    "ANTIQUE",
    "NATURAL",
    "CHOCOLATE",
    "LIGHT BLUE",
    "DARK GREEN",
    "BAROQUE",
    "ZINC",
    "WOODEN",
    "GLASS",
    "ENAMEL",
    "CERAMIC",
    "FELT",
    "PAPER",
    "WICKER",
    "MINT",
    "LILAC",
)
_MOTIFS = (
    "HEART",
    "SPOTTY",
    "STRIPY",
    "PAISLEY",
    "FLORAL",
    "ROSE",
    "STAR",
    "UNION JACK",
    "BIRD",
    "OWL",
    "CHRISTMAS",
    "SKULL",
    "POLKADOT",
    "REGENCY",
    "LOVEBIRD",
    "DAISY",
    "BUTTERFLY",
    "HEN",
    "CAT",
    "DOG",
    "ELEPHANT",
    "ROBOT",
    "SPACEBOY",
    "DOLLY GIRL",
    "CIRCUS",
    "JUNGLE",
    "WOODLAND",
    "SNOWFLAKE",
    "REINDEER",
    "ANGEL",
    "FAIRY",
    "ORIENTAL",
    "MOROCCAN",
    "FRENCH",
    "SCANDINAVIAN",
    "ENGLISH ROSE",
    "TEA PARTY",
    "GARDEN",
    "SEASIDE",
    "CHERRY",
)
_ITEMS = (
    "T-LIGHT HOLDER",
    "LANTERN",
    "CAKE CASES",
    "MUG",
    "TEA TOWEL",
    "JUMBO BAG",
    "LUNCH BAG",
    "DOORSTOP",
    "CUSHION COVER",
    "PHOTO FRAME",
    "NAPKINS",
    "PARTY BUNTING",
    "WALL CLOCK",
    "STORAGE TIN",
    "NOTEBOOK",
    "WATER BOTTLE",
    "HOT WATER BOTTLE",
    "PURSE",
    "COAT HANGER",
    "CANDLE",
    "GIFT WRAP",
    "GIFT TAGS",
    "CHARM",
    "KEY RING",
    "BOWL",
    "PLATE",
    "JUG",
    "TEAPOT",
    "EGG CUP",
    "CAKE STAND",
    "CHOPPING BOARD",
    "APRON",
    "OVEN GLOVE",
    "SHOPPING BAG",
    "WASHBAG",
    "MIRROR",
    "DRAWER KNOB",
    "HOOK",
    "METAL SIGN",
    "MAGNET",
    "PENCILS",
    "STICKERS",
    "GREETING CARD",
    "RIBBONS",
    "BASKET",
    "PLANTER",
    "DOORMAT",
    "TRINKET BOX",
    "JEWELLERY BOX",
    "HANGING DECORATION",
    "WREATH",
    "GARLAND",
    "LIGHTS",
    "UMBRELLA",
    "BEAKER",
    "TUMBLER",
    "STRAWS",
    "PAPER CUPS",
    "PARTY BAG",
    "CRAYONS",
    "JIGSAW",
    "MONEY BOX",
    "SOAP DISH",
    "TISSUES",
    "PLASTERS IN TIN",
    "BAKING SET",
)
_PRODUCTS = 3800
_ADJUSTMENT_NOTES = (
    "check",
    "?",
    "damaged",
    "damages",
    "found",
    "adjustment",
    "thrown away",
    "sold as set online",
    "amazon",
    "wet damaged",
    "missing",
    "mixed up",
    "counted",
    "given away",
    "faulty",
    "crushed",
    "damaged, thrown away",
)


def _csv_field(text: str) -> str:
    if "," in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


_FORMS = (
    "{colour} {motif} {item}",
    "SET OF {size} {motif} {item}",
    "{item}, {colour} {motif}",
    "PACK OF {pack} {colour} {item}",
    "{motif} {item}",
    "{colour} {item}",
    '{colour} {motif} FRAME {size3}" X {size5}"',
    "{item} {colour} {motif} DESIGN",
)
_FORM_WEIGHT = (0.36, 0.10, 0.015, 0.08, 0.20, 0.17, 0.005, 0.07)


def _description(form: int, colour: str, motif: str, item: str, size: int, trailing_space: bool) -> str:
    text = _FORMS[form].format(
        colour=colour, motif=motif, item=item, size=size, pack=size * 6, size3=size + 3, size5=size + 5
    )
    return text + " " if trailing_space else text


@dataclass
class Catalogue:
    entries: np.ndarray  # "StockCode,Description" (CSV-ready, latin-1), one row per entry
    price: np.ndarray  # base price in thousandths of a pound, per product entry
    cdf: np.ndarray  # popularity of the first ``products`` entries
    products: int
    special: dict[str, int]  # entries of the non-product codes (non_products.NON_PRODUCTS) by stock code
    notes: np.ndarray  # entries of stock adjustments (product code, note or empty description)
    vouchers: np.ndarray  # gift voucher entries
    voucher_price: np.ndarray


def build_catalogue(rng: np.random.Generator) -> Catalogue:
    texts: list[str] = []
    prices: list[int] = []
    seen: set[str] = set()
    # Random draws of every product family up front (more families than needed; the loop stops when full).
    m = 2 * _PRODUCTS
    bases = rng.choice(np.arange(10002, 90999), size=m, replace=False).tolist()
    variants = rng.choice([1, 2, 3, 4, 5], size=m, p=[0.8, 0.08, 0.06, 0.04, 0.02]).tolist()
    colours = np.argsort(rng.random((m, len(_COLOURS))), axis=1)[:, :5].tolist()
    motifs = rng.integers(len(_MOTIFS), size=m).tolist()
    items = rng.integers(len(_ITEMS), size=m).tolist()
    forms = rng.choice(len(_FORMS), size=m, p=_FORM_WEIGHT).tolist()
    sizes = rng.choice([2, 3, 4, 6, 12], size=m).tolist()
    trailing = (rng.random(m) < 0.05).tolist()
    pence = np.clip(np.exp(rng.normal(np.log(2.1), 0.85, m)) * 100, 10.0, 4000.0)
    pence = (np.rint(pence / 5.0) * 5 - (rng.random(m) < 0.2)).astype(np.int64).tolist()
    for f in range(m):
        if len(texts) >= _PRODUCTS:
            break
        for v in range(variants[f]):
            # Same template for every variant of a family, only the colour changes.
            text = _description(
                forms[f], _COLOURS[colours[f][v]], _MOTIFS[motifs[f]], _ITEMS[items[f]], sizes[f], trailing[f]
            )
            if text in seen or len(text) > 44 or len(texts) >= _PRODUCTS:
                continue
            seen.add(text)
            code = f"{bases[f]}{chr(65 + v)}" if variants[f] > 1 else str(bases[f])
            texts.append(f"{code},{_csv_field(text)}")
            prices.append(pence[f] * 10)
    order = rng.permutation(_PRODUCTS)
    popularity = 1.0 / (np.arange(_PRODUCTS) + 8.0) ** 0.9
    weights = popularity[order]
    cdf = np.cumsum(weights) / weights.sum()

    special: dict[str, int] = {}
    for item in NON_PRODUCTS:
        special[item.code] = len(texts)
        texts.append(f"{item.code},{_csv_field(item.description)}")
    vouchers, voucher_price = [], []
    for value in GIFT_VOUCHERS:
        vouchers.append(len(texts))
        voucher_price.append(round(value / (1 + GIFT_VOUCHER_VAT) * 100) * 10)
        texts.append(f"gift_0001_{value},{_csv_field(f'GIFT VOUCHER £{value}.00')}")
    notes = []
    for _ in range(300):
        product = texts[int(rng.integers(_PRODUCTS))]
        code = product.split(",", 1)[0]
        note = "" if rng.random() < 0.6 else _ADJUSTMENT_NOTES[rng.integers(len(_ADJUSTMENT_NOTES))]
        notes.append(len(texts))
        texts.append(f"{code},{_csv_field(note)}")
    encoded = [t.encode("latin-1") for t in texts]
    width = max(len(e) for e in encoded)
    return Catalogue(
        entries=np.array(encoded, dtype=f"S{width}"),
        price=np.array(prices, dtype=np.int64),
        cdf=cdf,
        products=_PRODUCTS,
        special=special,
        notes=np.array(notes),
        vouchers=np.array(vouchers),
        voucher_price=np.array(voucher_price, dtype=np.int64),
    )
