"""Running text for letters, contracts and permits (English and Korean), and its generator.

Sentences are generic trade-correspondence boilerplate with slots filled from
:mod:`detectors.synth.doc_names`; enough variety that no two pages read alike at a glance.
"""

from __future__ import annotations

import numpy as np

from detectors.synth import doc_names as names

EN_LETTER = (
    "We refer to your purchase order {po} dated {date} and are pleased to confirm shipment of the goods listed below.",
    "The consignment of {goods} left {city} on board the vessel {vessel} and is expected to arrive "
    "at {port} within {days} days.",
    "Please find enclosed the commercial invoice, packing list and bill of lading for customs clearance.",
    "Payment shall be made by telegraphic transfer within {days} days of the invoice date.",
    "Should the customs authorities require any further documents, please do not hesitate to contact us.",
    "We kindly ask you to arrange for the inspection of the goods upon arrival and to inform us of any discrepancy.",
    "The certificate of origin has been issued by the competent authority and is attached to this letter.",
    "All goods have been packed in accordance with the international standards for sea freight.",
    "We appreciate your continued business and look forward to a long and mutually beneficial relationship.",
    "The quantity shipped is {qty} units, as agreed in our contract of {date}.",
    "Any claim regarding quality or quantity must be made in writing within {days} days after arrival.",
    "Insurance has been arranged for 110 percent of the invoice value under institute cargo clauses.",
)
EN_CONTRACT = (
    "The Seller agrees to sell and the Buyer agrees to buy the goods described in Annex 1 under the "
    "terms set out below.",
    "The price of the goods is {amount} {currency} {incoterm} {port}, including export packing.",
    "Delivery shall take place no later than {date}; partial shipments are {allowed}.",
    "The Seller warrants that the goods conform to the specifications and are free from defects in "
    "material and workmanship.",
    "Title and risk pass to the Buyer when the goods are delivered in accordance with the agreed Incoterm.",
    "Neither party shall be liable for failure to perform caused by events beyond its reasonable control.",
    "Any dispute arising out of this contract shall be settled by arbitration in {city}.",
    "This contract is governed by the United Nations Convention on Contracts for the International Sale of Goods.",
    "Payment shall be made by irrevocable letter of credit opened in favour of the Seller.",
    "The Buyer shall be responsible for import duties, taxes and customs clearance at the port of destination.",
)
KO_LETTER = (
    "귀사의 무궁한 발전을 기원합니다.",
    "{date}자 발주서({po})에 따른 물품의 선적이 완료되었음을 알려드립니다.",
    "해당 화물은 {vessel}호에 선적되어 {days}일 이내에 {port}항에 도착할 예정입니다.",
    "통관에 필요한 상업송장, 포장명세서 및 선하증권을 첨부하오니 확인하여 주시기 바랍니다.",
    "세관에서 추가 서류를 요청하는 경우 즉시 연락하여 주시기 바랍니다.",
    "물품 도착 후 검수를 실시하여 이상이 있는 경우 서면으로 통보하여 주십시오.",
    "대금은 송장일로부터 {days}일 이내에 전신환으로 송금하여 주시기 바랍니다.",
    "원산지증명서는 관할 기관에서 발급받아 본 서신에 첨부하였습니다.",
    "앞으로도 변함없는 관심과 협조를 부탁드립니다.",
    "선적 수량은 {qty}개이며 계약 조건과 동일합니다.",
)
KO_CONTRACT = (
    "갑은 을에게 별첨 명세서에 기재된 물품을 공급하고 을은 그 대금을 지급한다.",
    "물품의 단가 및 총액은 {amount} {currency}로 하며 포장비를 포함한다.",
    "갑은 {date}까지 물품을 을이 지정한 장소에 인도하여야 한다.",
    "을은 물품 인도 후 {days}일 이내에 검수를 완료하고 그 결과를 갑에게 통지한다.",
    "물품의 하자가 발견된 경우 갑은 지체 없이 이를 보수하거나 대체품을 공급하여야 한다.",
    "천재지변 기타 불가항력으로 인한 이행 지체에 대하여는 책임을 지지 아니한다.",
    "본 계약과 관련하여 분쟁이 발생한 경우 {city}지방법원을 관할 법원으로 한다.",
    "수입 통관에 필요한 관세 및 제세는 을이 부담한다.",
    "본 계약에 정하지 아니한 사항은 관계 법령 및 상관례에 따른다.",
)
KO_PERMIT = (
    "위 물품에 대하여 관계 법령에 따른 요건을 확인하였음을 증명합니다.",
    "본 확인서는 발급일로부터 {days}일간 유효합니다.",
    "수입자는 통관 시 본 확인서를 세관에 제출하여야 합니다.",
    "표시된 수량을 초과하는 물품에 대하여는 본 확인의 효력이 미치지 아니합니다.",
)
EN_PERMIT = (
    "Permission is hereby granted to import the goods described above subject to the conditions stated overleaf.",
    "This licence is valid for {days} days from the date of issue and for a single consignment only.",
    "The holder shall present this licence to the customs office at the port of entry.",
    "The goods shall not be sold or transferred before the completion of the required inspection.",
)


def fill(template: str, rng: np.random.Generator) -> str:
    """Fill the ``{slots}`` of ``template`` with plausible values."""
    goods = names.GOODS[int(rng.integers(len(names.GOODS)))]
    city = names.CITIES[int(rng.integers(len(names.CITIES)))]
    return template.format(
        po=f"PO-{int(rng.integers(10000, 99999))}",
        date=names.date_text(rng, "en" if template.isascii() else "dot"),
        goods=goods[0].lower(),
        city=names.choice(rng, names.FOREIGN_CITIES) if template.isascii() else city[0],
        vessel=names.choice(rng, names.VESSELS),
        port=city[2] if template.isascii() else city[0],
        days=int(rng.choice([7, 14, 30, 45, 60, 90])),
        qty=f"{int(rng.integers(50, 20000)):,}",
        amount=f"{int(rng.integers(5_000, 900_000)):,}",
        currency=names.choice(rng, names.CURRENCIES),
        incoterm=names.choice(rng, names.INCOTERMS),
        allowed="permitted" if rng.random() < 0.5 else "not permitted",
    )


def sentences(pool: tuple[str, ...], n: int, rng: np.random.Generator) -> str:
    """``n`` distinct filled sentences from ``pool`` joined into a paragraph."""
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return " ".join(fill(pool[int(i)], rng) for i in idx)
