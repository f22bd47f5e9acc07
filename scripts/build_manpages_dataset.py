"""Build an XMC dataset of related manual pages (a man page -> the pages in its SEE ALSO section).

Like the "related products" data sets of Amazon, the items are documents that point at each other: a query
is one manual page, its text is the page's NAME line with its section ("grep(1), egrep, fgrep, rgrep - print
lines that match patterns"), its labels are the pages named in its SEE ALSO section, and a label's text is
the NAME line of the page it names. The pages are the English man pages (``/usr/share/man/man*``) of the
Debian 12 (bookworm) packages in ``PACKAGES``; their text is the upstream documentation of those projects,
under each package's licence (``/usr/share/doc/<package>/copyright``, listed in the NOTICE written beside).
Install them, then build::

    apt-get update
    apt-get install -y --no-install-recommends groff-base manpages manpages-dev perl-doc libssl-doc \\
        openssl libx11-doc libxt-dev libxext-dev libxft-dev libxcb-doc tcl8.6-doc tk8.6-doc tcllib \\
        libcurl4-doc ncurses-doc libbsd-dev libpcap0.8-dev libcap-dev liburing-dev libkeyutils-dev \\
        keyutils libaudit-dev libtirpc-dev libcrypt-dev uuid-dev libacl1-dev libattr1-dev libpam0g-dev \\
        libpam-modules libpam-runtime libnuma-dev systemd git-man iproute2 coreutils util-linux \\
        util-linux-extra mount fdisk bash dash libc-bin kmod hostname psmisc acl attr numactl cpio less \\
        diffutils file gpg procps e2fsprogs passwd login dpkg dpkg-dev apt debianutils binutils-common \\
        binutils-x86-64-linux-gnu gettext gzip bzip2 xz-utils openssh-client gnupg-utils net-tools \\
        ncurses-bin findutils grep sed tar man-db netpbm lvm2 dmeventd mtools xfsprogs btrfs-progs \\
        nftables rsync zsh x11-utils x11-xserver-utils x11-apps x11-common xorg-docs-core
    python3 scripts/build_manpages_dataset.py /tmp/hybrid-data/manpages-seealso  # ~3 min on 2 cores

How a page becomes an item: symbolic links and ``.so`` stubs are aliases of the page they point at, and so
are the other names on a page's NAME line; each real page is rendered once with groff (``-mandoc``, so both
man and mdoc pages; no hyphenation, very long lines) and its NAME and SEE ALSO sections are read from the
text. A reference is ``name(section)``; it is resolved to a page of ``PACKAGES`` by its exact section, else
by the section number alone ("3" finds "EVP_DigestInit.3ssl"; Tcl's "n" is Debian's "3tcl"/"3tk"), preferring
the referring page's own package when that is ambiguous, else by name alone within that package (netpbm's
"ppm(1)" is Debian's ppm.5). Perl and Tcl pages name each other without sections: there a bare name that is a
page of the same family (``BARE_NAME_FAMILIES``) is a reference too, when it is a whole item of a list
("Tcl_EvalObjEx, Tcl_GetObjResult") or, in running text, a ``Module::Name`` or ``perlxxx``. References to
pages not in ``PACKAGES`` are dropped (their text would be only a name), as are self-references; a page
whose NAME section is empty is left out. Texts are cut at ``MAX_NAMES`` names and ``MAX_TEXT_WORDS`` words.

Split: the pages with at least one resolved reference are shuffled with ``SEED`` and split 80/20; only labels
with at least ``MIN_LABEL_POINTS`` training points are kept, then only rows with a label. When a query page is
itself a label, that (row, label) pair goes to the filter file, as the reciprocal pairs of the Amazon data
sets do. The output depends only on the installed package versions (listed in the NOTICE); rebuilding on the
same versions gives the same files bit for bit.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import subprocess
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PACKAGES = (
    # man-pages project: system calls, C library, files, overviews
    "manpages",
    "manpages-dev",
    # libraries and languages
    "perl-doc",
    "libssl-doc",
    "openssl",
    "libx11-doc",
    "libxt-dev",
    "libxext-dev",
    "libxft-dev",
    "libxcb-doc",
    "tcl8.6-doc",
    "tk8.6-doc",
    "tcllib",
    "libcurl4-doc",
    "ncurses-doc",
    "libbsd-dev",
    "libpcap0.8-dev",
    "libcap-dev",
    "liburing-dev",
    "libkeyutils-dev",
    "keyutils",
    "libaudit-dev",
    "libtirpc-dev",
    "libcrypt-dev",
    "uuid-dev",
    "libacl1-dev",
    "libattr1-dev",
    "libpam0g-dev",
    "libpam-modules",
    "libpam-runtime",
    "libnuma-dev",
    # system and user tools
    "systemd",
    "git-man",
    "iproute2",
    "coreutils",
    "util-linux",
    "util-linux-extra",
    "mount",
    "fdisk",
    "bash",
    "dash",
    "libc-bin",
    "kmod",
    "hostname",
    "psmisc",
    "acl",
    "attr",
    "numactl",
    "cpio",
    "less",
    "diffutils",
    "file",
    "gpg",
    "procps",
    "e2fsprogs",
    "passwd",
    "login",
    "dpkg",
    "dpkg-dev",
    "apt",
    "debianutils",
    "binutils-common",
    "binutils-x86-64-linux-gnu",
    "gettext",
    "gzip",
    "bzip2",
    "xz-utils",
    "openssh-client",
    "gnupg-utils",
    "net-tools",
    "ncurses-bin",
    "findutils",
    "grep",
    "sed",
    "tar",
    "man-db",
    "groff-base",
    "netpbm",
    "lvm2",
    "dmeventd",
    "mtools",
    "xfsprogs",
    "btrfs-progs",
    "nftables",
    "rsync",
    "zsh",
    "x11-utils",
    "x11-xserver-utils",
    "x11-apps",
    "x11-common",
    "xorg-docs-core",
)
# Packages whose pages name each other without a section, and the packages such a bare name is looked up in.
BARE_NAME_FAMILIES = {
    "perl-doc": ("perl-doc",),
    "tcl8.6-doc": ("tcl8.6-doc", "tk8.6-doc", "tcllib"),
    "tk8.6-doc": ("tk8.6-doc", "tcl8.6-doc", "tcllib"),
    "tcllib": ("tcllib", "tcl8.6-doc", "tk8.6-doc"),
}
SECTION_ALIASES = {"n": ("3tcl", "3tk")}  # Tcl/Tk's section "n" is installed as 3tcl / 3tk by Debian
MIN_LABEL_POINTS = 2
TEST_SHARE = 0.2
SEED = 13
MAX_NAMES = 6  # names kept from a NAME line ("a, b, c, ...")
MAX_DESCRIPTION_WORDS = 24
MAX_TEXT_WORDS = 40  # a few pages put their whole synopsis in NAME
GROFF = ("groff", "-mandoc", "-t", "-Kutf-8", "-Tutf8", "-P-cbou", "-rLL=2000n", "-rHY=0")
MAN_DIR = re.compile(r"^/usr/share/man/man\d/([^/]+)\.gz$")
REFERENCE = re.compile(r"(?<![\w.:@+-])([A-Za-z0-9_][\w.:@+-]*) ?\((\d[A-Za-z+]*|n)\)")
BARE_REFERENCE = re.compile(r"(?<![\w:.-])((?:\w+::)+\w+|perl\w+)(?![\w:(-])")  # in running text
LIST_SEPARATOR = re.compile(r",|;|\band\b")  # a bare name is also any whole item of a list
NAME_SEPARATOR = re.compile(r"\s+(?:-{1,2}|—|–|‐|−|\\-)\s*")
HEADING_SEE_ALSO = re.compile(r"SEE\s+ALSO:?", re.IGNORECASE)
PLAIN_NAME = re.compile(r"^[\w.:@+-]+$")


def page_key(basename: str) -> tuple[str, str]:
    """``("grep", "1")`` for ``grep.1``."""
    name, _, section = basename.rpartition(".")
    return name, section.lower()


def package_pages(package: str) -> list[str]:
    """The English man page files (``/usr/share/man/manN/*.gz``) of an installed package."""
    try:
        out = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"package {package} is not installed; see the docstring's apt-get command") from exc
    return sorted(line for line in out.splitlines() if MAN_DIR.match(line))


def package_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return out.stdout.strip()


def so_target(path: str) -> str | None:
    """The file a ``.so man3/foo.3`` stub includes, or None for a real page."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        lines = [line.strip() for line in fh.read(4096).splitlines()]
    lines = [line for line in lines if line and not line.startswith(('.\\"', "'\\\""))]
    if len(lines) == 1 and lines[0].startswith(".so "):
        target = "/usr/share/man/" + lines[0][4:].strip()
        return target if target.endswith(".gz") else target + ".gz"
    return None


def render(path: str) -> tuple[str, str]:
    """The NAME line and the SEE ALSO text of one page, whitespace-normalised ("" when absent)."""
    source = gzip.decompress(Path(path).read_bytes())
    try:  # Debian's pages are UTF-8; a few old ones are Latin-1
        source.decode("utf-8")
    except UnicodeDecodeError:
        source = source.decode("latin-1").encode("utf-8")
    text = subprocess.run(
        GROFF, input=source, capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"}
    ).stdout.decode("utf-8", errors="replace")
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            heading = line.strip()
            current = "NAME" if heading.upper() in ("NAME", "NAME:") else heading
            current = "SEE ALSO" if HEADING_SEE_ALSO.fullmatch(current) else current
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    name = " ".join(" ".join(sections.get("NAME", [])).split())
    see_also = " ".join(" ".join(sections.get("SEE ALSO", [])).split())
    return name, see_also


def split_name_line(line: str) -> tuple[list[str], str]:
    """``(["grep", "egrep"], "print lines that match patterns")`` for a NAME line."""
    parts = NAME_SEPARATOR.split(line, maxsplit=1)
    names = [n.strip() for n in parts[0].split(",") if n.strip()]
    return names, (parts[1].strip() if len(parts) > 1 else "")


def item_text(key: tuple[str, str], name_line: str) -> str:
    """``grep(1), egrep, fgrep, rgrep - print lines that match patterns``."""
    names, description = split_name_line(name_line)
    names = [n for n in names if n != key[0]][: MAX_NAMES - 1]
    words = description.split()
    description = " ".join(words[:MAX_DESCRIPTION_WORDS]) + (" ..." if len(words) > MAX_DESCRIPTION_WORDS else "")
    text = ", ".join([f"{key[0]}({key[1]})"] + names)
    text = f"{text} - {description}" if description else text
    words = text.split()
    return " ".join(words[:MAX_TEXT_WORDS]) + (" ..." if len(words) > MAX_TEXT_WORDS else "")


class Resolver:
    """Maps ``name(section)`` references to the key of a real page of ``PACKAGES``."""

    def __init__(self, aliases: dict[tuple[str, str], tuple[str, str]], package_of: dict[tuple[str, str], str]):
        self.aliases = aliases
        self.package_of = package_of
        self.by_number: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        self.by_name: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for (name, section), page in aliases.items():
            self.by_number[name, section[:1]].add(page)
            self.by_name[name].add(page)

    def resolve(self, name: str, section: str, source: tuple[str, str]) -> tuple[str, str] | None:
        section = section.lower()
        for sec in (section, *SECTION_ALIASES.get(section, ())):
            if (name, sec) in self.aliases:
                return self.aliases[name, sec]
        candidates = self.by_number.get((name, section[:1]), set())
        if len(candidates) > 1:
            candidates = {c for c in candidates if self.package_of[c] == self.package_of[source]}
        if not candidates:  # e.g. netpbm's "ppm(1)" is Debian's ppm.5
            candidates = {c for c in self.by_name.get(name, ()) if self.package_of[c] == self.package_of[source]}
        return next(iter(candidates)) if len(candidates) == 1 else None

    def resolve_bare(self, name: str, source: tuple[str, str]) -> tuple[str, str] | None:
        """A name without section: a page of the source's package, else of the rest of its family."""
        for packages in ((self.package_of[source],), BARE_NAME_FAMILIES[self.package_of[source]]):
            candidates = {c for c in self.by_name.get(name, ()) if self.package_of[c] in packages}
            if candidates:
                return next(iter(candidates)) if len(candidates) == 1 else None
        return None


def collect_pages(workers: int) -> tuple[dict, dict, dict, dict]:
    """Real pages (key -> path), their package, NAME lines and SEE ALSO texts, and every alias."""
    files: dict[tuple[str, str], tuple[str, str]] = {}  # key -> (path, package), first package wins
    for package in PACKAGES:
        for path in package_pages(package):
            files.setdefault(page_key(MAN_DIR.match(path)[1]), (path, package))
    path_key = {path: key for key, (path, _) in files.items()}
    aliases: dict[tuple[str, str], tuple[str, str]] = {}
    real: dict[tuple[str, str], str] = {}
    package_of: dict[tuple[str, str], str] = {}
    for key, (path, _) in sorted(files.items()):
        seen, target = {path}, path
        while True:  # follow symlinks and .so stubs to the real page
            resolved = os.path.realpath(target)
            nxt = so_target(resolved) if os.path.exists(resolved) else None
            if nxt is None or nxt in seen:
                target = resolved
                break
            seen.add(nxt)
            target = nxt
        if not os.path.exists(target) or so_target(target) is not None:
            continue
        page = path_key.get(target)
        if page is None:
            continue  # points outside the pages of PACKAGES
        real[page] = target
        package_of[page] = files[page][1]
        aliases[key] = page
    keys = sorted(real)
    with ProcessPoolExecutor(workers) as pool:
        rendered = dict(zip(keys, pool.map(render, [real[k] for k in keys], chunksize=32), strict=True))
    name_lines = {k: rendered[k][0] for k in keys if rendered[k][0]}
    see_also = {k: rendered[k][1] for k in name_lines}
    for key in sorted(name_lines):  # the other names on a NAME line are aliases where nothing else claims them
        for name in split_name_line(name_lines[key])[0]:
            if PLAIN_NAME.match(name):
                aliases.setdefault((name, key[1]), key)
    aliases = {a: p for a, p in aliases.items() if p in name_lines}
    return name_lines, see_also, aliases, package_of


def references(key, text: str, resolver: Resolver) -> tuple[list[tuple[str, str]], int]:
    """Resolved pages a SEE ALSO text names (in order, no duplicates, no self) and the unresolved count."""
    found, missed = [], 0
    for name, section in REFERENCE.findall(text):
        page = resolver.resolve(name.rstrip("."), section, key)
        missed += page is None
        found.append(page)
    if resolver.package_of[key] in BARE_NAME_FAMILIES:
        rest = REFERENCE.sub(" ", text)
        bare = BARE_REFERENCE.findall(rest) + [i.strip(" .") for i in LIST_SEPARATOR.split(rest)]
        found += [resolver.resolve_bare(name, key) for name in bare if PLAIN_NAME.match(name)]
    return [p for p in dict.fromkeys(found) if p is not None and p != key], missed


def build(out: Path, workers: int) -> None:
    start = time.time()
    name_lines, see_also, aliases, package_of = collect_pages(workers)
    resolver = Resolver(aliases, package_of)
    targets, n_missed = {}, 0
    for key in sorted(name_lines):
        refs, missed = references(key, see_also[key], resolver)
        n_missed += missed
        if refs:
            targets[key] = refs
    print(f"{len(name_lines)} pages, {len(targets)} with resolved SEE ALSO references; {n_missed} unresolved dropped")

    rng = random.Random(SEED)
    queries = sorted(targets)
    rng.shuffle(queries)
    n_test = int(len(queries) * TEST_SHARE)
    test, train = queries[:n_test], queries[n_test:]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for q in train:
        for lab in targets[q]:
            counts[lab] += 1
    labels = sorted(lab for lab, c in counts.items() if c >= MIN_LABEL_POINTS)
    label_index = {lab: i for i, lab in enumerate(labels)}

    def rows(split: list) -> tuple[list, list[list[int]]]:
        kept = [q for q in split if any(lab in label_index for lab in targets[q])]
        return kept, [sorted(label_index[lab] for lab in targets[q] if lab in label_index) for q in kept]

    train, trn_y = rows(train)
    test, tst_y = rows(test)
    out.mkdir(parents=True, exist_ok=True)

    def write_split(name: str, items: list, ys: list[list[int]]) -> None:
        texts = [item_text(q, name_lines[q]) for q in items]
        (out / f"{name}.raw.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        lines = [f"{len(items)} {len(labels)}"] + [" ".join(f"{j}:1" for j in y) for y in ys]
        (out / f"{name}_X_Y.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    write_split("trn", train, trn_y)
    write_split("tst", test, tst_y)
    lbl_texts = [item_text(lab, name_lines[lab]) for lab in labels]
    (out / "lbl.raw.txt").write_text("\n".join(lbl_texts) + "\n", encoding="utf-8")
    for name, items in (("test", test), ("train", train)):
        pairs = [f"{i} {label_index[q]}" for i, q in enumerate(items) if q in label_index]
        (out / f"filter_labels_{name}.txt").write_text("".join(p + "\n" for p in pairs), encoding="utf-8")
    used = sorted({package_of[k] for k in [*train, *test, *labels]})
    notice = [
        "Texts: the NAME lines of Debian 12 (bookworm) manual pages; labels: their SEE ALSO references.",
        "Built by scripts/build_manpages_dataset.py of vixml from the man pages of these Debian packages.",
        "Each page is the upstream documentation of its project, under the licence stated in",
        "/usr/share/doc/<package>/copyright of that package (GPL, BSD, MIT, Apache-2.0, Artistic, ...).",
        "Only short excerpts (a page's name line) are reproduced here.",
        "",
        *(f"{p} {package_version(p)}" for p in used),
    ]
    (out / "NOTICE").write_text("\n".join(notice) + "\n", encoding="utf-8")
    print(f"{len(train)} train, {len(test)} test, {len(labels)} labels -> {out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="dataset folder to write")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel groff processes")
    args = parser.parse_args()
    build(args.out, args.workers)
