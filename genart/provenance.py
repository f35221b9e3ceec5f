"""Machine-readable provenance for stored artwork: an XMP packet with the IPTC DigitalSourceType.

A PNG written by the store carries (``iTXt`` chunks):

- ``XML:com.adobe.xmp``: an XMP packet (the key Adobe's XMP spec and exiftool use for PNG) with
  ``Iptc4xmpExt:DigitalSourceType`` (the full IPTC NewsCodes URI, e.g. ``.../trainedAlgorithmicMedia``),
  ``xmp:CreatorTool``, and the genart parameters that reproduce the image (``genart:*``);
- ``genart``: the same parameters as JSON (easy to read back without an XML parser);
- ``DigitalSourceType`` and ``Software``: plain-text copies for tools that read only text chunks.

A JPEG (a preset's ``delivery.format: jpeg``) carries the same text: the XMP packet in an APP1 segment
(where Pillow, exiftool and Adobe's SDK look for it), the other entries as one JSON object in a COM
segment (``genart.imaging.with_jpeg_text``); ``read_provenance`` reads either format back.

Which IPTC term a variant gets (see https://cv.iptc.org/newscodes/digitalsourcetype/):

- ``trainedAlgorithmicMedia``: diffusion output (img2img, outpainted or not: every pixel came from the model);
- ``compositeWithTrainedAlgorithmicMedia``: diffusion output with a typeset title laid over it;
- ``algorithmicallyEnhanced``: ``classic``: a real captured frame, cropped, resized and colour-graded by
  non-generative algorithms (IPTC: "a digital capture enhanced or modified by an algorithm"); this is
  more accurate than ``algorithmicMedia``, which IPTC defines as media created purely by an algorithm
  "not based on any sampled training data", i.e. synthesised, not a capture;
- ``composite``: ``classic`` with a typeset title: a capture composited with other (non-generative) elements.

For generated variants the XMP also carries IPTC Photo Metadata 2025.1's AI fields, in the same
``Iptc4xmpExt`` namespace: ``AISystemUsed`` (the model id), ``AISystemVersionUsed`` (its revision) and
``AIPromptInformation`` (the prompt). They are written into the PNG before any C2PA signing, so the
signed manifest covers them.

C2PA Content Credentials (a signed manifest with the same DigitalSourceType and the parameters) are
added when a signing certificate is configured: see ``C2PA_NOTE``.

Generated variants also carry an imperceptible watermark (``embed_watermark``): invisible-watermark's
``dwtDct`` method, as diffusers' ``StableDiffusionXLWatermarker`` applies it, on luma (see
``WATERMARK_SCALES``), with genart's payload (``FinishSpec.watermark_payload``: "genart" is 48 bits,
the length of SDXL's own mark). It is embedded last, on the finished picture at its delivery size,
because ``dwtDct`` works on 4x4 blocks of the DWT and does not survive a resampling (measured: a mark
made at 640x360 and resized to 1280x720 reads as noise); it survives a JPEG at quality 85 (tested).
``read_watermark`` decodes it with the library's own decoder.

Imports the standard library and ``genart.imaging`` (numpy) at import time: provenance uses the image
containers, the containers know nothing of provenance; c2pa-python and cryptography inside the C2PA functions.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Mapping
from xml.sax.saxutils import escape

from genart.imaging import XMP_TEXT_KEY, image_text
from genart.errors import ConfigError, InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

IPTC_DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
XMP_KEY = XMP_TEXT_KEY  # where the packet goes in a PNG (genart.imaging writes and reads the containers)
GENART_NS = "https://genart.invalid/ns/1.0/"  # a private XMP namespace for genart's own fields

# the terms genart uses, and their IPTC labels
DST_TERMS: dict[str, str] = {
    "trainedAlgorithmicMedia": "Created using Generative AI",
    "compositeWithTrainedAlgorithmicMedia": "Edited using Generative AI (composite with trained algorithmic media)",
    "algorithmicallyEnhanced": "Algorithmically enhanced (non-generative edits of a capture)",
    "algorithmicMedia": "Created purely by an algorithm, not trained",
    "composite": "Composite of several elements",
}

C2PA_NOTE = (
    "C2PA Content Credentials are opt-in: install c2pa-python and set GENART_C2PA_CERT (PEM chain: signer "
    "certificate first, then its CA) and GENART_C2PA_KEY (PEM private key); GENART_C2PA_ALG (default ES256) "
    "and GENART_C2PA_TSA (a time-stamp authority URL) are optional. Signing is offline. A certificate from a "
    "CA on the C2PA trust list makes the credentials trusted; `make_test_credentials` writes a private test "
    "CA and signer whose manifests validate as well-formed and untampered but 'signingCredential.untrusted'. "
    "Off by default: a signature carries a time and a unique id, so signed PNGs are not byte-reproducible."
)


def digital_source_type(*, generative: bool, titled: bool) -> str:
    """The IPTC DigitalSourceType term for a variant."""
    if generative:
        return "compositeWithTrainedAlgorithmicMedia" if titled else "trainedAlgorithmicMedia"
    return "composite" if titled else "algorithmicallyEnhanced"


IPTC_AI_FIELDS = ("AISystemUsed", "AISystemVersionUsed", "AIPromptInformation")


def xmp_packet(dst_term: str, *, software: str, fields: Mapping[str, object] | None = None,
               ai: Mapping[str, str] | None = None) -> str:
    """An XMP packet (RDF/XML) labelling an image with its IPTC DigitalSourceType and genart fields.

    ``fields`` are written as ``genart:<name>`` simple properties (values as text; non-strings as JSON);
    ``ai`` as IPTC 2025.1's ``Iptc4xmpExt:`` AI properties (names from ``IPTC_AI_FIELDS``).
    """
    iptc = []
    for name, value in (ai or {}).items():
        if name not in IPTC_AI_FIELDS:
            raise ValueError(f"unknown IPTC AI field {name!r}; one of {', '.join(IPTC_AI_FIELDS)}")
        if value:
            iptc.append(f"   <Iptc4xmpExt:{name}>{escape(str(value))}</Iptc4xmpExt:{name}>\n")
    props = []
    for name, raw in (fields or {}).items():
        if not name.replace("_", "").isalnum():
            raise ValueError(f"XMP field names must be alphanumeric/underscore, got {name!r}")
        text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, ensure_ascii=False)
        props.append(f"   <genart:{name}>{escape(text)}</genart:{name}>")
    body = "\n".join(props)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:genart="{GENART_NS}">\n'
        f"   <Iptc4xmpExt:DigitalSourceType>{escape(IPTC_DST + dst_term)}</Iptc4xmpExt:DigitalSourceType>\n"
        f"   <xmp:CreatorTool>{escape(software)}</xmp:CreatorTool>\n"
        f"{''.join(iptc)}"
        f"{body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )


def parse_xmp(packet: str) -> dict[str, str]:
    """The simple properties of an XMP packet as ``{"prefix:name": text}`` (prefixes as genart writes them)."""
    import xml.etree.ElementTree as ET

    start = packet.find("<x:xmpmeta")
    end = packet.rfind("</x:xmpmeta>")
    if start < 0 or end < 0:
        raise ValueError("not an XMP packet (no x:xmpmeta element)")
    root = ET.fromstring(packet[start : end + len("</x:xmpmeta>")])
    prefixes = {"http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt", "http://ns.adobe.com/xap/1.0/": "xmp",
                GENART_NS: "genart"}
    out: dict[str, str] = {}
    for desc in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"):
        for child in desc:
            ns, _, local = child.tag[1:].partition("}")
            out[f"{prefixes.get(ns, ns)}:{local}"] = child.text or ""
    return out


def png_text_chunks(dst_term: str, *, software: str, genart: Mapping[str, object]) -> dict[str, str]:
    """The iTXt chunks the store writes into a variant's PNG (see the module doc)."""
    if dst_term not in DST_TERMS:
        raise ValueError(f"unknown DigitalSourceType term {dst_term!r}; genart uses {', '.join(DST_TERMS)}")
    blob = json.dumps(dict(genart), sort_keys=True, ensure_ascii=False)
    return {
        "genart": blob,
        "DigitalSourceType": IPTC_DST + dst_term,
        "Software": software,
        XMP_KEY: xmp_packet(dst_term, software=software, fields={k: v for k, v in genart.items()},
                            ai=ai_fields(dst_term, genart.get("params"))),
    }


def ai_fields(dst_term: str, params: object) -> dict[str, str]:
    """IPTC 2025.1's AI fields for a variant's parameters (a ``GenerationParams.as_dict()``): the model, its
    revision and the prompt, for generated images only (a captured frame was made by no AI system)."""
    if "TrainedAlgorithmic" not in dst_term and dst_term != "trainedAlgorithmicMedia" or not isinstance(params, Mapping):
        return {}
    out = {"AISystemUsed": params.get("model_id"), "AISystemVersionUsed": params.get("revision"),
           "AIPromptInformation": params.get("prompt")}
    return {k: str(v) for k, v in out.items() if v}


# --- imperceptible watermark (invisible-watermark's dwtDct) -----------------------------------------
WATERMARK_METHOD = "dwtDct"
# (Y, U, V) quantisation steps. diffusers' SDXL watermarker uses the library's default, (0, 36, 36): U only,
# which a JPEG with the usual 4:2:0 chroma subsampling erases (measured: 48% of the bits right at quality 85,
# chance). On luma with a step of 16 the mark reads back whole after JPEG at quality 85 and 75 on every
# frame tried (colour and black-and-white), at a PSNR of 48-50 dB (imperceptible).
WATERMARK_SCALES = (16, 0, 0)
_BLOCK = 4


def _payload_bits(payload: str) -> list[int]:
    return [int(b) for ch in payload.encode("ascii") for b in f"{ch:08b}"]


def embed_watermark(rgb: np.ndarray, payload: str = "genart") -> np.ndarray:
    """``rgb`` (uint8 H x W x 3, at least 256x256 pixels) with ``payload`` embedded imperceptibly.

    invisible-watermark's ``dwtDct`` (``imwatermark.maxDct.EmbedMaxDct``), as diffusers applies it for
    SDXL (the picture in BGR order, the payload as bits repeated over every block), with two differences
    that keep the picture intact: the embedding works in float and rounds once (the library writes the
    inverse DWT back into uint8, truncating), and leaves the detail bands as they were (the library swaps
    the horizontal and vertical ones on the way back); and at ``WATERMARK_SCALES``. Only the Haar
    approximation band changes, so it is computed and put back directly (2x2 sums), vectorised over the
    blocks (the library loops in Python: 2 s for 1280x720 here). The library's own ``WatermarkDecoder``
    reads it (``read_watermark``). Deterministic.

    Raises:
        InvalidArgumentError: the picture is smaller than 256x256 pixels (the method's limit).
    """
    import cv2
    import numpy as np

    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] * arr.shape[1] < 256 * 256:
        raise InvalidArgumentError("watermarked image", arr.shape, "an RGB image of at least 256x256 pixels")
    bits = np.asarray(_payload_bits(payload), np.float32)
    yuv = cv2.cvtColor(np.ascontiguousarray(arr[..., ::-1]), cv2.COLOR_BGR2YUV).astype(np.float32)
    rows, cols = arr.shape[0] // 4 * 4, arr.shape[1] // 4 * 4
    for ch, scale in enumerate(WATERMARK_SCALES[:2]):  # the library embeds and reads Y and U only
        if scale <= 0:
            continue
        plane = np.ascontiguousarray(yuv[:rows, :cols, ch])
        # the Haar DWT's approximation band: each 2x2 pixel block summed, halved (pywt.dwt2(..., "haar")[0])
        quads = plane.reshape(rows // 2, 2, cols // 2, 2)
        ca = quads.sum(axis=(1, 3)) / 2.0
        r, c = ca.shape[0] // _BLOCK, ca.shape[1] // _BLOCK
        blocks = ca[:r * _BLOCK, :c * _BLOCK].reshape(r, _BLOCK, c, _BLOCK).transpose(0, 2, 1, 3).reshape(r * c, -1)
        idx = np.arange(r * c)
        pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1  # the block's largest coefficient but the first
        val = blocks[idx, pos]
        mag = (np.abs(val) // scale + 0.25 + 0.5 * bits[idx % bits.size]) * scale
        delta = np.zeros_like(blocks)
        delta[idx, pos] = np.where(val >= 0, mag, -mag) - val
        dca = np.zeros_like(ca)
        dca[:r * _BLOCK, :c * _BLOCK] = delta.reshape(r, c, _BLOCK, _BLOCK).transpose(0, 2, 1, 3).reshape(
            r * _BLOCK, c * _BLOCK)
        # the inverse DWT spreads a change of the approximation by half over its 2x2 pixels; details are untouched
        quads += (dca / 2.0)[:, None, :, None]
        yuv[:rows, :cols, ch] = plane
    out = cv2.cvtColor(np.clip(np.round(yuv), 0, 255).astype(np.uint8), cv2.COLOR_YUV2BGR)
    return np.ascontiguousarray(out[..., ::-1])


def read_watermark(rgb: np.ndarray, length: int = 6) -> str | None:
    """The payload of ``length`` ASCII characters that a watermark in ``rgb`` carries, read with
    invisible-watermark's own ``WatermarkDecoder``; None when the bits are not printable text (no mark)."""
    import numpy as np
    from imwatermark import WatermarkDecoder

    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[0] * arr.shape[1] < 256 * 256:
        return None
    bits = WatermarkDecoder("bits", length * 8).decode(np.ascontiguousarray(arr[..., ::-1]), WATERMARK_METHOD,
                                                       scales=list(WATERMARK_SCALES))
    data = bytes(int("".join(str(int(b)) for b in bits[i:i + 8]), 2) for i in range(0, len(bits), 8))
    return data.decode("ascii") if all(32 <= c < 127 for c in data) else None


def read_provenance(path: "str | object") -> dict[str, object]:
    """What a stored variant (PNG or JPEG) says about itself:
    ``{"genart": {...}, "xmp": {...}, "DigitalSourceType": uri}``, the same for both formats (a JPEG
    carries the XMP packet in APP1 and the other text in a COM segment: ``genart.imaging.with_jpeg_text``)."""
    text = image_text(path)
    out: dict[str, object] = {"DigitalSourceType": text.get("DigitalSourceType")}
    out["genart"] = json.loads(text["genart"]) if "genart" in text else None
    out["xmp"] = parse_xmp(text[XMP_KEY]) if XMP_KEY in text else None
    return out


read_png_provenance = read_provenance  # its older name, from when variants were PNGs only


# --- C2PA Content Credentials (optional: c2pa-python) ---------------------------------------------
C2PA_PARAMS_LABEL = "org.genart.params"


def c2pa_signer_from_env() -> object | None:
    """A c2pa ``Signer`` from ``$GENART_C2PA_CERT`` / ``$GENART_C2PA_KEY``, or None when they are unset.

    Raises:
        ConfigError: the variables are set but the files or the c2pa-python package are missing.
    """
    import os

    cert, key = os.environ.get("GENART_C2PA_CERT"), os.environ.get("GENART_C2PA_KEY")
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("C2PA signing needs both GENART_C2PA_CERT and GENART_C2PA_KEY",
                          field="GENART_C2PA_CERT" if not cert else "GENART_C2PA_KEY")
    try:
        import c2pa
    except ImportError:
        raise ConfigError("GENART_C2PA_CERT is set but the c2pa-python package is not installed",
                          field="GENART_C2PA_CERT", hint="pip install c2pa-python, or unset GENART_C2PA_CERT") from None
    from pathlib import Path

    try:
        chain, pkey = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the C2PA certificate or key: {exc}", field="GENART_C2PA_CERT") from None
    alg_name = os.environ.get("GENART_C2PA_ALG", "ES256")
    alg = getattr(c2pa.C2paSigningAlg, alg_name, None)
    if alg is None:
        raise ConfigError(f"unknown C2PA signing algorithm '{alg_name}'", field="GENART_C2PA_ALG",
                          hint="one of " + ", ".join(m for m in dir(c2pa.C2paSigningAlg) if m.isupper()))
    tsa = os.environ.get("GENART_C2PA_TSA") or None
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain, pkey, tsa))


def c2pa_sign_png(data: bytes, dst_term: str, *, signer: object, software: str, title: str,
                  genart: Mapping[str, object], mime: str = "image/png") -> bytes:
    """``data`` (a PNG, or a JPEG with ``mime="image/jpeg"``) with an embedded, signed C2PA manifest: a
    ``c2pa.created`` action carrying the IPTC DigitalSourceType, and genart's parameters as an
    ``org.genart.params`` assertion."""
    import io

    import c2pa

    manifest = {
        "claim_generator_info": [{"name": software.split(" ")[0], "version": (software.split(" ") + [""])[1]}],
        "title": title,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": IPTC_DST + dst_term,
                                   "softwareAgent": {"name": software}}]}},
            {"label": C2PA_PARAMS_LABEL, "data": json.loads(json.dumps(dict(genart), default=str))},
        ],
    }
    out = io.BytesIO()
    with c2pa.Builder(json.dumps(manifest)) as builder:
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def read_c2pa(path: "str | object") -> dict[str, object] | None:
    """The active C2PA manifest of a file with its validation: ``{"state", "status", "manifest"}``; None if none."""
    import c2pa

    with open(path, "rb") as f:  # type: ignore[arg-type]
        mime = "image/jpeg" if f.read(2) == b"\xff\xd8" else "image/png"
    try:
        with open(path, "rb") as f, c2pa.Reader(mime, f) as reader:  # type: ignore[arg-type]
            report = json.loads(reader.json())
    except c2pa.C2paError:
        return None
    active = report.get("active_manifest")
    return {"state": report.get("validation_state"), "status": report.get("validation_status") or [],
            "manifest": report.get("manifests", {}).get(active)}


def make_test_credentials(folder: "str | object", days: int = 30) -> tuple[str, str]:
    """Write a private test CA + signer (EC P-256) as ``c2pa-test-chain.pem`` and ``c2pa-test-key.pem``.

    For tests and demos only: manifests signed with it validate but are reported as untrusted.
    Returns (chain path, key path).
    """
    import datetime
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "genart test")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("genart test CA")).issuer_name(name("genart test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("genart test signer")).issuer_name(name("genart test CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder = Path(folder)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    chain_path, key_path = folder / "c2pa-test-chain.pem", folder / "c2pa-test-key.pem"
    chain_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(chain_path), str(key_path)
