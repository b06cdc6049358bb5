"""Name and text vocabularies for synthetic customs paperwork (Korean and English).

Everything here is invented or generic: city names, common surnames and product words, combined
by a seeded generator. No real person, company or seal is reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Language = Literal["ko", "en"]
AuthorityKind = Literal["customs", "chamber", "ministry", "company_ko", "company_en"]

# (Hangul, Hanja, romanised) for port and inland customs cities.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("부산", "釜山", "Busan"),
    ("인천", "仁川", "Incheon"),
    ("대구", "大邱", "Daegu"),
    ("광주", "光州", "Gwangju"),
    ("평택", "平澤", "Pyeongtaek"),
    ("울산", "蔚山", "Ulsan"),
    ("마산", "馬山", "Masan"),
    ("청주", "淸州", "Cheongju"),
    ("천안", "天安", "Cheonan"),
    ("여수", "麗水", "Yeosu"),
    ("목포", "木浦", "Mokpo"),
    ("군산", "群山", "Gunsan"),
    ("제주", "濟州", "Jeju"),
    ("속초", "束草", "Sokcho"),
    ("동해", "東海", "Donghae"),
    ("안양", "安養", "Anyang"),
    ("구미", "龜尾", "Gumi"),
    ("창원", "昌原", "Changwon"),
    ("양산", "梁山", "Yangsan"),
    ("김해", "金海", "Gimhae"),
)
FOREIGN_CITIES = (
    "Shenzhen", "Ningbo", "Qingdao", "Hai Phong", "Ho Chi Minh City", "Osaka", "Yokohama",
    "Hamburg", "Rotterdam", "Antwerp", "Los Angeles", "Long Beach", "Singapore", "Kaohsiung",
    "Jakarta", "Bangkok", "Chennai", "Melbourne", "Vancouver", "Genoa",
)  # fmt: skip
COUNTRIES = (
    "CHINA", "VIET NAM", "JAPAN", "GERMANY", "NETHERLANDS", "BELGIUM", "U.S.A.", "SINGAPORE",
    "TAIWAN", "INDONESIA", "THAILAND", "INDIA", "AUSTRALIA", "CANADA", "ITALY",
)  # fmt: skip
KO_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍전고문양손배백허유남심노하곽성차주우구"
KO_GIVEN = "민서준지현우영수진호성은하윤재동혁희경태상원석철미정연아선주훈기도예채승유건"
EN_SURNAMES = (
    "Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Wang", "Zhang", "Liu", "Chen",
    "Nguyen", "Tran", "Tanaka", "Sato", "Muller", "Schmidt", "Smith", "Johnson", "Brown", "Garcia",
    "Rossi", "Jansen", "Peeters", "Tan", "Lim", "Wong", "Singh", "Patel",
)  # fmt: skip
EN_GIVEN = (
    "James", "Robert", "Maria", "Anna", "Thomas", "Peter", "Laura", "Daniel", "Sophie", "Michael",
    "Min-jun", "Seo-yeon", "Ji-ho", "Hyun-woo", "Wei", "Jing", "Hao", "Linh", "Minh", "Yuki",
    "Kenji", "Hans", "Eva", "Marco", "Giulia", "Pieter", "David", "Sarah", "Ravi", "Mei",
)  # fmt: skip
KO_COMPANY_STEMS = (
    "한일", "대성", "동양", "세영", "삼화", "태평양", "우진", "신성", "대한", "미래", "한빛", "금강",
    "동서", "영진", "성우", "광명", "효성", "서해", "대륙", "화신", "제일", "중앙", "일신", "진흥",
)  # fmt: skip
KO_COMPANY_TRADES = ("무역", "물산", "상사", "통상", "로지스", "산업", "식품", "전자", "화학", "해운")
EN_COMPANY_STEMS = (
    "Hanil", "Daesung", "Orient", "Pacific", "Golden Bridge", "Sunrise", "Evergreen", "Harbor",
    "Huaxing", "Jinlong", "Mekong", "Sakura", "Nordwind", "Atlas", "Silverline", "Blue Ocean",
    "Greenfield", "Unity", "Kestrel", "Meridian", "Polaris", "Crown", "Lotus", "Summit",
)  # fmt: skip
EN_COMPANY_TRADES = (
    "Trading", "Electronics", "Logistics", "Industrial", "Foods", "Textile", "Chemical",
    "Machinery", "Import & Export", "Seafood", "Materials", "Components",
)  # fmt: skip
EN_COMPANY_FORMS = ("Co., Ltd.", "Corp.", "Inc.", "GmbH", "B.V.", "JSC", "Pte. Ltd.", "Ltd.")
KO_CUSTOMS_UNITS = ("통관지원과", "수입과", "심사과", "조사과", "수출입물류과", "세관운영과")
EN_CUSTOMS_UNITS = ("Clearance Division", "Import Section", "Audit Division", "Cargo Control")
KO_MINISTRIES = ("식품의약품안전처", "농림축산검역본부", "국립수산물품질관리원", "관세청", "산업통상자원부")
EN_MINISTRIES = (
    "Ministry of Food and Drug Safety", "Animal and Plant Quarantine Agency", "Korea Customs Service",
    "Ministry of Trade, Industry and Energy", "National Fishery Products Quality Service",
)  # fmt: skip

GOODS: tuple[tuple[str, str, str], ...] = (
    # (English description, Korean description, HS code)
    ("Lithium-ion battery cells", "리튬이온 축전지", "8507.60"),
    ("Frozen shrimp (Penaeus vannamei)", "냉동 새우", "0306.17"),
    ("Cotton T-shirts, knitted", "면 티셔츠(편직)", "6109.10"),
    ("Stainless steel fasteners", "스테인리스강 볼트", "7318.15"),
    ("LED display modules", "LED 디스플레이 모듈", "8529.90"),
    ("Polyethylene granules", "폴리에틸렌 수지", "3901.10"),
    ("Roasted coffee beans", "볶은 커피 원두", "0901.21"),
    ("Ball bearings", "볼 베어링", "8482.10"),
    ("Laptop computers", "노트북 컴퓨터", "8471.30"),
    ("Car tyres, radial", "승용차용 타이어", "4011.10"),
    ("Ceramic floor tiles", "도자기 바닥타일", "6907.21"),
    ("Wooden furniture parts", "목제 가구 부품", "9403.90"),
    ("Dried red pepper", "건고추", "0904.21"),
    ("Printed circuit boards", "인쇄회로기판", "8534.00"),
    ("Hand tools, wrenches", "수공구(렌치)", "8204.11"),
    ("Cosmetic creams", "화장품 크림", "3304.99"),
    ("Silk scarves", "견직물 스카프", "6214.10"),
    ("Aluminium profiles", "알루미늄 압출재", "7604.29"),
)

INCOTERMS = ("FOB", "CIF", "CFR", "EXW", "DAP", "DDP", "FCA")
CURRENCIES = ("USD", "EUR", "JPY", "CNY", "KRW")
VESSELS = (
    "HANJIN BUSAN", "EVER GIVEN", "MSC AURORA", "HMM ALGECIRAS", "COSCO LIBRA", "MAERSK ESSEN",
    "ONE COMMITMENT", "YM WELLNESS", "SITC OSAKA", "PAN CONTINENTAL",
)  # fmt: skip


def choice(rng: np.random.Generator, items: tuple[str, ...] | str) -> str:
    """One element of ``items`` (a tuple, or the characters of a string)."""
    return items[int(rng.integers(len(items)))]


def korean_person(rng: np.random.Generator) -> str:
    """A three-syllable Korean name, e.g. ``"김민서"``."""
    return choice(rng, KO_SURNAMES) + choice(rng, KO_GIVEN) + choice(rng, KO_GIVEN)


def english_person(rng: np.random.Generator) -> str:
    """``"Given Surname"``, e.g. ``"Laura Jansen"``."""
    return f"{choice(rng, EN_GIVEN)} {choice(rng, EN_SURNAMES)}"


def korean_company(rng: np.random.Generator) -> str:
    stem, trade = choice(rng, KO_COMPANY_STEMS), choice(rng, KO_COMPANY_TRADES)
    return f"(주){stem}{trade}" if rng.random() < 0.5 else f"{stem}{trade} 주식회사"


def english_company(rng: np.random.Generator) -> str:
    return f"{choice(rng, EN_COMPANY_STEMS)} {choice(rng, EN_COMPANY_TRADES)} {choice(rng, EN_COMPANY_FORMS)}"


def date_text(rng: np.random.Generator, style: Literal["dot", "iso", "en"] = "dot") -> str:
    """A plausible recent date: ``2024.03.15``, ``2024-03-15`` or ``15 MAR 2024``."""
    y, m, d = int(rng.integers(2019, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    if style == "iso":
        return f"{y:04d}-{m:02d}-{d:02d}"
    if style == "en":
        month = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")[m - 1]
        return f"{d:02d} {month} {y:04d}"
    return f"{y:04d}.{m:02d}.{d:02d}"


@dataclass(frozen=True)
class Authority:
    """Who issues a stamp: a customs office, chamber, ministry or trading company.

    Attributes:
        kind: Category, which drives the stamp shapes that are plausible for it.
        language: Language of the stamp text.
        name: Full name as it appears on the stamp ring or first line.
        short: Short form (for a centre line, a square seal or a date stamp).
        unit: Department or sub-title (may be empty).
        hanja: Hanja form of the seal text for Korean offices (may be empty).
    """

    kind: AuthorityKind
    language: Language
    name: str
    short: str
    unit: str
    hanja: str


def make_authority(rng: np.random.Generator) -> Authority:
    """A random synthetic issuing authority."""
    kind: AuthorityKind = ("customs", "chamber", "ministry", "company_ko", "company_en")[
        int(rng.choice(5, p=[0.36, 0.12, 0.12, 0.22, 0.18]))
    ]
    ko, hanja, roman = CITIES[int(rng.integers(len(CITIES)))]
    english = rng.random() < 0.35
    if kind == "customs":
        office = f"{ko}{'본부' if rng.random() < 0.3 else ''}세관"
        if english:
            return Authority(kind, "en", f"{roman.upper()} CUSTOMS", roman.upper(),
                             choice(rng, EN_CUSTOMS_UNITS).upper(), "")  # fmt: skip
        return Authority(kind, "ko", office, f"{office}장", choice(rng, KO_CUSTOMS_UNITS), f"{hanja}稅關長印")
    if kind == "chamber":
        if english:
            return Authority(kind, "en", f"{roman.upper()} CHAMBER OF COMMERCE & INDUSTRY",
                             roman.upper(), "CERTIFIED", "")  # fmt: skip
        return Authority(kind, "ko", f"{ko}상공회의소", f"{ko}상공회의소장", "원산지증명", f"{hanja}商工會議所印")
    if kind == "ministry":
        if english:
            name = choice(rng, EN_MINISTRIES)
            return Authority(kind, "en", name.upper(), roman.upper(), "APPROVED", "")
        name = choice(rng, KO_MINISTRIES)
        return Authority(kind, "ko", name, f"{name}장", f"{ko}지원", "")
    if kind == "company_ko":
        name = korean_company(rng)
        return Authority(kind, "ko", name, "대표이사", korean_person(rng), "")
    name = english_company(rng)
    return Authority(kind, "en", name.upper(), choice(rng, FOREIGN_CITIES).upper(), choice(rng, COUNTRIES), "")
