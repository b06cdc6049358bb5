"""Page templates for customs paperwork: what is printed, where marks and fill-ins go.

Each template draws one document on a :class:`~detectors.synth.doc_layout.DocCanvas` and requests
its marks (stamps, signatures) and handwritten fill-ins; the composer in
:mod:`detectors.synth.documents` renders those. Layout details (margins, fonts, optional parts)
come from the canvas rng, so two pages of the same kind differ as two offices' forms do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from detectors.synth import doc_corpus as corpus
from detectors.synth import doc_names as names
from detectors.synth.doc_layout import DocCanvas, MarkSlot

DocumentKind = Literal[
    "import_declaration", "commercial_invoice", "certificate_of_origin", "permit", "business_letter", "contract"
]
DOCUMENT_KINDS: tuple[DocumentKind, ...] = (
    "import_declaration", "commercial_invoice", "certificate_of_origin", "permit", "business_letter", "contract",
)  # fmt: skip
#: Probability that a document of each kind is in Korean.
KOREAN_SHARE: dict[DocumentKind, float] = {
    "import_declaration": 0.85,
    "commercial_invoice": 0.15,
    "certificate_of_origin": 0.2,
    "permit": 0.6,
    "business_letter": 0.45,
    "contract": 0.5,
}


def _goods_rows(rng: np.random.Generator, n: int, korean: bool) -> tuple[list[list[str]], float]:
    rows, total = [], 0.0
    for i in range(n):
        en, ko, hs = names.GOODS[int(rng.integers(len(names.GOODS)))]
        qty = int(rng.integers(10, 5000))
        price = float(rng.uniform(0.5, 400.0))
        amount = qty * price
        total += amount
        rows.append([str(i + 1), ko if korean else en, hs, f"{qty:,}", f"{price:,.2f}", f"{amount:,.2f}"])
    return rows, total


def _letterhead(c: DocCanvas, x: float, y: float, company: str, w: float) -> float:
    rng = c.rng
    logo = rng.random() < 0.75
    if logo:
        c.logo(x, y, 14.0, company)
    tx = x + (18.0 if logo else 0.0)
    c.text(tx, y + 1.0, company, 15, bold=True, max_w=w - 20)
    addr = (
        f"{int(rng.integers(1, 999))}, {names.choice(rng, names.FOREIGN_CITIES)} {names.choice(rng, names.COUNTRIES)}"
    )
    if c.language == "ko":
        city = names.CITIES[int(rng.integers(len(names.CITIES)))][0]
        addr = f"{city}시 중앙로 {int(rng.integers(1, 300))}, {int(rng.integers(1, 20))}층"
    c.text(
        tx,
        y + 8.5,
        f"{addr}   TEL +82-{int(rng.integers(2, 70))}-{int(rng.integers(100, 999))}-{int(rng.integers(1000, 9999))}",
        8,
    )
    colour = tuple(int(v) for v in rng.integers(0, 160, 3))
    c.line(x, y + 16.5, x + w, y + 16.5, 1.6, colour)  # type: ignore[arg-type]
    return y + 22.0


def import_declaration(c: DocCanvas) -> None:
    """수입신고서 (import declaration), after the Korean UNI-PASS paper layout."""
    rng = c.rng
    ko = c.language == "ko"
    x, y, w = 12.0 + float(rng.uniform(-2, 3)), 14.0 + float(rng.uniform(-2, 4)), 186.0
    c.text(x + w / 2, y, "수 입 신 고 서" if ko else "IMPORT DECLARATION", 17, bold=True, anchor="ma")
    c.text(x + w, y + 2, "(갑지)" if ko else "(Sheet 1)", 8, anchor="ra")
    c.text(x, y + 4, "※ 처리기간 : 3일" if ko else "Processing: 3 days", 7.5)
    y += 11.0
    labels_ko = [
        "① 신고번호",
        "② 신고일",
        "③ 세관.과",
        "⑥ 입항일",
        "④ B/L(AWB)번호",
        "⑤ 화물관리번호",
        "⑧ 반입일",
        "⑨ 징수형태",
    ]
    labels_en = [
        "1 Decl. No.",
        "2 Date",
        "3 Office",
        "6 Arrival",
        "4 B/L No.",
        "5 Cargo ref.",
        "8 Entry date",
        "9 Payment",
    ]
    labels = labels_ko if ko else labels_en
    office = names.CITIES[int(rng.integers(len(names.CITIES)))]
    values = [
        f"{int(rng.integers(10000, 99999))}-{int(rng.integers(10, 99))}-{int(rng.integers(100000, 999999))}M",
        names.date_text(rng),
        f"{int(rng.integers(10, 99))}0-{int(rng.integers(10, 99))}",
        names.date_text(rng),
        f"{names.choice(rng, ('HDMU', 'MAEU', 'COSU', 'ONEY'))}{int(rng.integers(10**8, 10**9))}",
        f"{int(rng.integers(10, 99))}{names.choice(rng, 'ABCDEFGH')}{int(rng.integers(10**8, 10**9))}",
        names.date_text(rng),
        "11",
    ]
    cw = w / 4
    for i, (lab, val) in enumerate(zip(labels, values, strict=True)):
        c.field_box(x + (i % 4) * cw, y + (i // 4) * 10.0, cw, 10.0, lab, val, hand=bool(i == 7 and rng.random() < 0.4))
    y += 20.0
    party_labels = ["⑩ 신고인", "⑪ 수입자", "⑫ 납세의무자", "⑬ 운송주선인", "⑭ 해외거래처"] if ko else [
        "10 Declarant", "11 Importer", "12 Taxpayer", "13 Forwarder", "14 Supplier"]  # fmt: skip
    side = (["⑮ 통관계획", "⑯ 신고구분", "⑰ 거래구분", "⑱ 종류", "⑲ 원산지증명서"] if ko else
            ["15 Plan", "16 Type", "17 Transaction", "18 Kind", "19 C/O"])  # fmt: skip
    side_vals = ["D", "A", "11", "K", "Y"]
    declarant = names.korean_person(rng) if ko else names.english_person(rng)
    for i, lab in enumerate(party_labels):
        comp = names.korean_company(rng) if ko and i < 4 else names.english_company(rng)
        val = f"{comp}  {declarant}" if i == 0 else comp
        c.field_box(x, y + i * 9.0, w * 0.62, 9.0, lab, val)
        c.field_box(x + w * 0.62, y + i * 9.0, w * 0.38, 9.0, side[i], side_vals[i])
    c.want(MarkSlot("signature", x + w * 0.5, y + 5.0, 30.0, "party", 0.55))
    y += 47.0
    head = (
        ["란", "품명 · 규격", "세번부호", "수량", "단가", "금액"]
        if ko
        else ["No", "Description", "HS code", "Qty", "Unit price", "Amount"]
    )
    rows, total = _goods_rows(rng, int(rng.integers(2, 6)), ko)
    y = c.table(x, y, [10, 70, 24, 22, 26, 34], [head, *rows], row_h=7.0)
    y += 3.0
    tax = ["과세가격(CIF)", "관세", "부가가치세", "총세액합계"] if ko else ["Customs value", "Duty", "VAT", "Total tax"]
    duty = total * float(rng.uniform(0.0, 0.13))
    vat = (total + duty) * 0.1
    tax_vals = [f"{total * 1350:,.0f}", f"{duty * 1350:,.0f}", f"{vat * 1350:,.0f}", f"{(duty + vat) * 1350:,.0f}"]
    y = c.table(x, y, [46.5] * 4, [tax, tax_vals], row_h=8.0)
    y += 4.0
    # Per-line duty breakdown, as on the real form's lower half.
    head = ["세종", "세율(구분)", "감면율", "세액", "감면분납부호", "내국세종부호"] if ko else [
        "Tax", "Rate", "Relief", "Amount", "Relief code", "Domestic code"]  # fmt: skip
    lines = []
    for _ in range(len(rows)):
        rate = float(rng.choice([0.0, 3.0, 6.5, 8.0, 13.0]))
        lines.append(
            ["관" if ko else "Duty", f"{rate:.2f} (A)", "0.000", f"{float(rng.uniform(1e4, 5e6)):,.0f}", "", ""]
        )
        lines.append(["부" if ko else "VAT", "10.00 (A)", "0.000", f"{float(rng.uniform(1e4, 5e6)):,.0f}", "", ""])
    y = c.table(x, y, [22, 34, 24, 44, 31, 31], [head, *lines[:8]], row_h=6.0, size_pt=8)
    y += 4.0
    box_h = float(rng.uniform(38, 52))
    c.rect(x, y, w * 0.55, box_h)
    c.text(x + 2, y + 2, "세관기재란" if ko else "For customs use", 9, bold=True)
    c.paragraph(x + 2, y + 9, w * 0.5, "위와 같이 신고수리합니다." if ko else "Release authorised as declared.", 9)
    c.want(MarkSlot("stamp", x + w * 0.38, y + box_h * 0.55, 40.0, "issuer", 0.9))
    c.want(MarkSlot("signature", x + w * 0.2, y + box_h * 0.75, 30.0, "officer", 0.5))
    c.rect(x + w * 0.57, y, w * 0.43, box_h)
    c.text(x + w * 0.59, y + 2, "신고인 기재란" if ko else "Declarant", 9, bold=True)
    c.text(x + w * 0.59, y + box_h - 10, (f"신고인 : {declarant}   (서명)" if ko else f"Signed: {declarant}"), 9)
    c.want(MarkSlot("signature", x + w * 0.82, y + box_h - 9, 34.0, "party", 0.85))
    if rng.random() < 0.5:
        c.hand(names.date_text(rng), x + w * 0.6, y + box_h * 0.45, 3.2)
    c.text(
        x + w / 2, 287.0, f"{office[0]}세관 · UNI-PASS 전자통관시스템" if ko else f"{office[2]} Customs", 7, anchor="ma"
    )


def commercial_invoice(c: DocCanvas) -> None:
    """A commercial invoice with letterhead, party boxes, goods table and signature block."""
    rng = c.rng
    ko = c.language == "ko"
    x, w = 15.0 + float(rng.uniform(-3, 3)), 180.0
    seller = names.korean_company(rng) if ko else names.english_company(rng)
    y = _letterhead(c, x, 12.0 + float(rng.uniform(0, 4)), seller, w)
    c.text(x + w / 2, y, "상 업 송 장" if ko else "COMMERCIAL INVOICE", 16, bold=True, anchor="ma")
    y += 10.0
    left = [
        ("Shipper / Exporter", seller),
        ("Consignee", names.english_company(rng)),
        ("Notify party", "SAME AS CONSIGNEE"),
    ]
    right = [
        ("Invoice No. & date", f"INV-{int(rng.integers(1000, 99999))}  {names.date_text(rng, 'en')}"),
        ("L/C No.", f"M{int(rng.integers(10**7, 10**8))}"),
        ("Terms of delivery", f"{names.choice(rng, names.INCOTERMS)} {names.choice(rng, names.FOREIGN_CITIES)}"),
    ]
    for i, ((la, va), (lb, vb)) in enumerate(zip(left, right, strict=True)):
        c.field_box(x, y + i * 12.0, w / 2, 12.0, la, va)
        c.field_box(x + w / 2, y + i * 12.0, w / 2, 12.0, lb, vb)
    y += 36.0
    route = [
        ("Port of loading", names.choice(rng, names.FOREIGN_CITIES)),
        ("Final destination", "BUSAN, KOREA"),
        ("Vessel / flight", names.choice(rng, names.VESSELS)),
        ("Sailing on", names.date_text(rng, "en")),
    ]
    for i, (la, va) in enumerate(route):
        c.field_box(x + i * w / 4, y, w / 4, 11.0, la, va)
    y += 15.0
    rows, total = _goods_rows(rng, int(rng.integers(2, 9)), ko)
    head = ["No", "Description of goods", "HS code", "Quantity", "Unit price", "Amount"]
    y = c.table(x, y, [10, 74, 22, 22, 24, 28], [head, *rows], row_h=float(rng.uniform(6.5, 8.0)))
    cur = names.choice(rng, names.CURRENCIES[:3])
    c.text(x + w - 2, y + 3, f"TOTAL  {cur} {total:,.2f}", 10, bold=True, anchor="ra")
    y += 14.0
    y = c.paragraph(x, y, w * 0.6, corpus.fill(corpus.EN_LETTER[int(rng.integers(3, 8))], rng), 8.5)
    sig_y = max(y + 22.0, 235.0 + float(rng.uniform(-8, 20)))
    sx = x + w * float(rng.uniform(0.55, 0.68))
    c.line(sx, sig_y, sx + 55, sig_y, 0.6)
    c.text(sx, sig_y + 2, "Authorized signature", 8.5)
    c.text(sx, sig_y - 26, f"For and on behalf of {seller}" if rng.random() < 0.6 else seller, 8.5, max_w=w - (sx - x))
    c.want(MarkSlot("signature", sx + 27, sig_y - 7, 48.0, "party", 0.92))
    c.want(MarkSlot("stamp", sx + 20 + float(rng.uniform(-8, 25)), sig_y - 12, 40.0, "issuer", 0.7))


def certificate_of_origin(c: DocCanvas) -> None:
    """A certificate of origin with the usual numbered boxes and the certifying authority block."""
    rng = c.rng
    ko = c.language == "ko"
    x, y, w = 14.0 + float(rng.uniform(-2, 2)), 14.0 + float(rng.uniform(-2, 3)), 182.0
    c.text(x + w, y - 1, "ORIGINAL", 10, bold=True, anchor="ra")
    y += 5.0
    half = w * 0.55
    c.field_box(x, y, half, 24, "1. Exporter (name, address, country)", names.english_company(rng))
    c.rect(x + half, y, w - half, 48)
    c.text(
        x + half + (w - half) / 2,
        y + 8,
        "원 산 지 증 명 서" if ko else "CERTIFICATE OF ORIGIN",
        14,
        bold=True,
        anchor="ma",
    )
    c.text(x + half + (w - half) / 2, y + 18, "issued by", 8, anchor="ma")
    chamber = f"{names.CITIES[int(rng.integers(len(names.CITIES)))][2]} Chamber of Commerce & Industry"
    c.text(x + half + (w - half) / 2, y + 24, chamber, 9, bold=True, anchor="ma", max_w=w - half - 4)
    c.text(x + half + (w - half) / 2, y + 31, "REPUBLIC OF KOREA", 9, anchor="ma")
    c.field_box(x, y + 24, half, 24, "2. Consignee (name, address, country)", names.english_company(rng))
    y += 48
    c.field_box(x, y, half, 22, "3. Means of transport and route", f"BY SEA  {names.choice(rng, names.VESSELS)}")
    c.field_box(x + half, y, w - half, 22, "4. For official use")
    y += 22
    rows, _ = _goods_rows(rng, int(rng.integers(1, 5)), False)
    head = ["5. Item", "6. Marks", "7. Description of goods", "8. Origin", "9. Weight", "10. Invoice"]
    table = [
        [r[0], "N/M", r[1], names.choice(rng, ("KR", "CN", "VN", "WO", "PE")),
         f"{int(rng.integers(10, 9000)):,} KG", f"INV-{int(rng.integers(1000, 9999))}"]
        for r in rows
    ]  # fmt: skip
    c.table(x, y, [14, 18, 76, 20, 26, 28], [head, *table], row_h=8.0, size_pt=8)
    y += 8.0 * (len(table) + 1) + float(rng.uniform(4, 30))
    box_h = 62.0
    c.rect(x, y, w / 2, box_h)
    c.rect(x + w / 2, y, w / 2, box_h)
    c.text(x + 1.5, y + 1.5, "11. Declaration by the exporter", 8, bold=True)
    c.paragraph(
        x + 2,
        y + 7,
        w / 2 - 4,
        "The undersigned hereby declares that the above details and statements are correct and that all "
        "the goods were produced in the country stated.",
        7.5,
    )
    c.text(x + 2, y + box_h - 8, f"{names.choice(rng, names.FOREIGN_CITIES)}, {names.date_text(rng, 'en')}", 8)
    c.want(MarkSlot("signature", x + w * 0.32, y + box_h - 20, 40.0, "party", 0.9))
    c.text(x + w / 2 + 1.5, y + 1.5, "12. Certification", 8, bold=True)
    c.paragraph(
        x + w / 2 + 2,
        y + 7,
        w / 2 - 4,
        "It is hereby certified, on the basis of control carried out, that the declaration by the exporter is correct.",
        7.5,
    )
    c.want(MarkSlot("stamp", x + w * 0.7, y + box_h * 0.58, 45.0, "issuer", 0.95))
    c.want(MarkSlot("signature", x + w * 0.83, y + box_h * 0.7, 36.0, "officer", 0.8))
    c.text(x + w / 2 + 2, y + box_h - 5, f"Certificate No. {int(rng.integers(10**6, 10**7))}", 7.5)


def permit(c: DocCanvas) -> None:
    """A licence or import-requirement confirmation with the issuing officer's seal."""
    rng = c.rng
    ko = c.language == "ko"
    x, w = 25.0 + float(rng.uniform(-4, 4)), 160.0
    y = 22.0 + float(rng.uniform(-3, 6))
    c.text(
        x,
        y - 6,
        f"제 {int(rng.integers(2019, 2027))}-{int(rng.integers(1000, 99999))} 호"
        if ko
        else f"No. {int(rng.integers(10**5, 10**6))}",
        9,
    )
    titles_ko = ("수입요건 확인서", "수입식품등 수입신고 확인증", "검 역 증 명 서", "수출입 승인서")
    titles_en = ("IMPORT LICENCE", "PHYTOSANITARY PERMIT", "IMPORT PERMIT", "CERTIFICATE OF CONFORMITY")
    titles = titles_ko if ko else titles_en
    c.text(x + w / 2, y + 6, names.choice(rng, titles), 19, bold=True, anchor="ma")
    y += 24
    applicant = names.korean_company(rng) if ko else names.english_company(rng)
    en, kor, hs = names.GOODS[int(rng.integers(len(names.GOODS)))]
    qty = f"{int(rng.integers(10, 9000)):,} KG"
    if ko:
        address = f"{names.CITIES[int(rng.integers(len(names.CITIES)))][0]}시 산업로 {int(rng.integers(1, 500))}"
        rows = [["신 청 인", applicant], ["대 표 자", names.korean_person(rng)], ["주    소", address],
                ["품    명", kor], ["세번부호", hs], ["수    량", qty], ["용    도", "판매용"]]  # fmt: skip
    else:
        address = f"{int(rng.integers(1, 500))} Harbour Road, {names.choice(rng, names.FOREIGN_CITIES)}"
        rows = [["Applicant", applicant], ["Representative", names.english_person(rng)], ["Address", address],
                ["Goods", en], ["HS code", hs], ["Quantity", qty], ["Purpose", "Commercial sale"]]  # fmt: skip
    y = c.table(x, y, [38, w - 38], rows, row_h=float(rng.uniform(9, 11)), size_pt=10, header=False)
    y += 10
    pool = corpus.KO_PERMIT if ko else corpus.EN_PERMIT
    y = c.paragraph(x, y, w, corpus.sentences(pool, int(rng.integers(2, 4)), rng), 10.5, leading=1.7)
    y += 12
    c.text(x + w / 2, y, names.date_text(rng, "dot" if ko else "en"), 11, anchor="ma")
    y += 22 + float(rng.uniform(0, 15))
    city = names.CITIES[int(rng.integers(len(names.CITIES)))]
    issuer = (
        (f"{city[0]}세관장" if rng.random() < 0.5 else f"{names.choice(rng, names.KO_MINISTRIES)}장")
        if ko
        else f"Director, {city[2]} Customs"
    )
    c.text(x + w / 2, y, issuer, 15, bold=True, anchor="ma")
    # The official seal is pressed over the end of the issuer's title, as Korean practice requires.
    tw = c.text_width_mm(issuer, 15, True)
    c.want(MarkSlot("stamp", x + w / 2 + tw / 2 + 4, y + 3, 30.0, "issuer", 0.97))
    if rng.random() < 0.35:
        c.want(MarkSlot("signature", x + w / 2 - tw / 2 - 15, y + 12, 30.0, "officer", 1.0))


def business_letter(c: DocCanvas) -> None:
    """A business letter on letterhead, signed and sometimes stamped."""
    rng = c.rng
    ko = c.language == "ko"
    x, w = 22.0 + float(rng.uniform(-4, 4)), 166.0
    sender = names.korean_company(rng) if ko else names.english_company(rng)
    y = _letterhead(c, x, 14.0, sender, w)
    y += float(rng.uniform(2, 10))
    c.text(x + w, y, names.date_text(rng, "dot" if ko else "en"), 10, anchor="ra")
    y += 10
    recipient = names.korean_company(rng) if ko else names.english_company(rng)
    c.text(x, y, f"수신 : {recipient} 대표이사 귀하" if ko else recipient, 10.5)
    if not ko:
        c.text(x, y + 5.5, f"Attn: {names.english_person(rng)}", 10)
        c.text(x, y + 11, f"{names.choice(rng, names.FOREIGN_CITIES)}, {names.choice(rng, names.COUNTRIES)}", 10)
    y += 20
    goods = names.GOODS[int(rng.integers(len(names.GOODS)))]
    c.text(x, y, f"제목 : {goods[1]} 선적 안내" if ko else f"Subject: Shipment of {goods[0].lower()}", 11, bold=True)
    y += 10
    if not ko:
        c.text(x, y, "Dear Sir or Madam,", 10.5)
        y += 8
    pool = corpus.KO_LETTER if ko else corpus.EN_LETTER
    for _ in range(int(rng.integers(2, 5))):
        y = (
            c.paragraph(x, y, w, corpus.sentences(pool, int(rng.integers(2, 4)), rng), 10.5, leading=1.55, indent=6.0)
            + 4
        )
    y += 6
    c.text(x, y, "감사합니다." if ko else names.choice(rng, ("Yours faithfully,", "Sincerely,", "Best regards,")), 10.5)
    y += 24
    person = names.korean_person(rng) if ko else names.english_person(rng)
    c.text(x, y, f"{sender}  대표이사  {person}" if ko else person, 10.5, bold=ko)
    if not ko:
        c.text(
            x,
            y + 5.5,
            names.choice(rng, ("Export Manager", "Managing Director", "Sales Director", "Logistics Manager")),
            10,
        )
        c.text(x, y + 11, sender, 10)
    c.want(MarkSlot("signature", x + 22, y - 8, 50.0, "party", 0.9))
    if ko:
        tw = c.text_width_mm(f"{sender}  대표이사  {person}", 10.5, True)
        c.text(x + tw + 2, y, "(인)", 10.5)
        c.want(MarkSlot("stamp", x + tw + 6, y + 2, 26.0, "issuer", 0.85))
    else:
        c.want(MarkSlot("stamp", x + 70 + float(rng.uniform(-10, 20)), y - 4, 40.0, "issuer", 0.35))


def contract(c: DocCanvas) -> None:
    """A sales contract: articles and a two-party signature block with seals."""
    rng = c.rng
    ko = c.language == "ko"
    x, w = 22.0 + float(rng.uniform(-4, 4)), 166.0
    y = 20.0 + float(rng.uniform(-3, 5))
    c.text(
        x + w / 2,
        y,
        "물 품 공 급 계 약 서" if ko else names.choice(rng, ("SALES CONTRACT", "SUPPLY AGREEMENT")),
        18,
        bold=True,
        anchor="ma",
    )
    y += 16
    seller = names.korean_company(rng) if ko else names.english_company(rng)
    buyer = names.korean_company(rng) if ko else names.english_company(rng)
    if ko:
        intro = f"{seller}(이하 '갑')와 {buyer}(이하 '을')는 다음과 같이 물품공급계약을 체결한다."
    else:
        intro = f"This contract is made between {seller} (the Seller) and {buyer} (the Buyer) on the following terms."
    y = c.paragraph(x, y, w, intro, 10.5, leading=1.6) + 4
    pool = corpus.KO_CONTRACT if ko else corpus.EN_CONTRACT
    n_articles = int(rng.integers(4, 8))
    for i, idx in enumerate(rng.choice(len(pool), size=min(n_articles, len(pool)), replace=False)):
        c.text(x, y, f"제{i + 1}조" if ko else f"Article {i + 1}", 10.5, bold=True)
        y = c.paragraph(x + 16, y, w - 16, corpus.fill(pool[int(idx)], rng), 10, leading=1.5) + 2.5
        if y > 205:
            break
    y = max(y + 8, 222.0 + float(rng.uniform(-10, 10)))
    c.text(x + w / 2, y, names.date_text(rng, "dot" if ko else "en"), 10.5, anchor="ma")
    y += 14
    for col, (role, comp) in enumerate(((("갑" if ko else "SELLER"), seller), (("을" if ko else "BUYER"), buyer))):
        bx = x + col * w / 2
        c.text(bx, y, f"({role})" if ko else role, 10.5, bold=True)
        c.text(bx, y + 7, comp, 10, max_w=w / 2 - 6)
        person = names.korean_person(rng) if ko else names.english_person(rng)
        line = f"대표이사  {person}" if ko else f"By: {person}"
        c.text(bx, y + 14, line, 10)
        tw = c.text_width_mm(line, 10)
        if ko:
            c.text(bx + tw + 3, y + 14, "(인)", 10)
            c.want(MarkSlot("stamp", bx + tw + 7, y + 16, 24.0, "party", 0.9))
            c.want(MarkSlot("signature", bx + tw / 2 + 8, y + 22, 30.0, "party", 0.4))
        else:
            c.line(bx, y + 28, bx + 60, y + 28, 0.5)
            c.text(bx, y + 29.5, "Signature", 8)
            c.want(MarkSlot("signature", bx + 28, y + 23, 50.0, "party", 0.9))
            c.want(MarkSlot("stamp", bx + 45, y + 16, 38.0, "party", 0.45))


TEMPLATES: dict[DocumentKind, Callable[[DocCanvas], None]] = {
    "import_declaration": import_declaration,
    "commercial_invoice": commercial_invoice,
    "certificate_of_origin": certificate_of_origin,
    "permit": permit,
    "business_letter": business_letter,
    "contract": contract,
}
