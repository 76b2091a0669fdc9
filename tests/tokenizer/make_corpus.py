#!/usr/bin/python3
"""Writes tests/tokenizer/corpus.txt: one tokenizer test case per line.

    /usr/bin/python3 tests/tokenizer/make_corpus.py

Deterministic. Sources: hand-written lines below (prose, code, numbers,
whitespace, contractions, scripts, emoji, special-token text, odd constructs),
generated digit / whitespace / punctuation lines, and lines of the Debian
`fortunes` package (/usr/share/games/fortunes). Every character must be
assigned in the Unicode version of /usr/share/unicode (the one cria's tables
come from) so that reference implementations with newer Unicode data agree.
Lines never contain '\\n' or '\\r'; multi-line cases are written to
tests/tokenizer/multiline.json (a JSON list of strings).
"""
import json
import os
import random
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus.txt")
OUT_MULTI = os.path.join(HERE, "multiline.json")
FORTUNES = "/usr/share/games/fortunes"

HAND = [
    # prose
    "The quick brown fox jumps over the lazy dog.",
    "Hello world!",
    "Hello, World! How are you doing today?",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Call me Ishmael. Some years ago - never mind how long precisely - having little money in my purse.",
    "She said, \"I'll be there at 5 o'clock,\" but she wasn't.",
    "“Smart quotes” and ‘single smart quotes’ are common in typeset text…",
    "Em-dashes—like this—and en-dashes – like that – appear too.",
    "A sentence with a trailing space ",
    " A sentence with a leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "double  space  between  words",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal.",
    "e.g. i.e. etc. vs. a.m. p.m. U.S.A. Ph.D.",
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "camelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_SNAKE_CASE",
    # contractions, any case
    "I'm, you're, he's, she'll, we've, they'd, it's, don't, can't, won't.",
    "DON'T STOP, I'LL BE BACK, WE'RE HERE, THEY'VE GONE, HE'D KNOW, SHE'S RIGHT, I'M OK",
    "Don'T mix CaSe'S like tHeY'Re dOiNg, I'lL sEe",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
    "''s '''t 'x 'sup 'tis 'twas 'em 'n' rock'n'roll",
    "rock 'n' roll, ma'am, o'clock, y'all, fo'c'sle",
    "The cat's toy; the cats' toys; James's book; James' book.",
    "Long s contraction: it'ſ odd, IT'ſ ODD, 'ſ alone",
    "Long s before letters: 'ſtate, IT'ſTATE, 'ſ1, x'ſ'ſ",
    "Right single quote isn’t an apostrophe: don’t, I’ll, we’re",
    # numbers
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "Pi is 3.14159 and e is 2.71828; the answer is 42.",
    "Call 555-0123 or +1 (800) 555-0199 ext. 1234.",
    "Dates: 2024-01-15, 15/01/2024, Jan 15th, 2024, 1999-12-31T23:59:59Z",
    "Prices: $5, $1,234.56, €99.99, £12, ¥1000, ₹500, 10% off, 3½ cups, ¼ inch",
    "Versions v1.2.3, 10.0.19041.1, python3.11, gcc-12.2.0",
    "Numbers with spaces: 1 000 000 and 1,000,000 and 1.000.000",
    "Hex 0xDEADBEEF, octal 0o755, binary 0b1010_1010, float 1e-10, 6.022e23",
    "Superscripts x² y³ ¹ and fractions ½ ⅓ ¾ ⅞ and circled ① ② ③",
    "Roman numerals Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ ⅰ ⅱ ⅲ",
    "Arabic-Indic digits ٠١٢٣٤٥٦٧٨٩ and Devanagari digits ०१२३४५६७८९",
    "Fullwidth digits ０１２３４５６７８９ and letters ＡＢＣ ａｂｃ",
    "Mixed 12abc34 a1b2c3 1st 2nd 3rd 4th 100km 5kg 3.5GHz 4K 1080p",
    "Phone 1234567890123456789012345678901234567890 digits",
    "-1 -12 -123 +1 +12 +123 1+1=2 2*3=6 10/2=5 2^10=1024",
    # whitespace runs and tabs
    "tab\tseparated\tvalues\there",
    "\tleading tab",
    "trailing tab\t",
    "two tabs\t\tbetween",
    "mixed \t \t whitespace \t\t  runs",
    "    four spaces of indentation",
    "        eight spaces of indentation",
    "word                                                 many spaces",
    "a b  c   d    e     f      g",
    "non\u00a0breaking\u00a0spaces and\u2003em\u2002en\u2009thin\u200aspaces",
    "ideographic\u3000space and narrow\u202fno-break and medium\u205fmath space",
    "vertical\x0btab and form\x0cfeed characters",
    "next line\x85character (NEL) and\x85\x85two",
    "byte order mark \ufeffinside text\ufeff",
    "zero\u200bwidth\u200cnon\u200djoiner and soft\u00adhyphen",
    " ",
    "  ",
    "\t",
    " \t ",
    "x ",
    " x",
    "! ",
    " !",
    "  !!",
    "  hello",
    "  123",
    # code
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "#include <stdio.h>",
    "int main(int argc, char** argv) { printf(\"%d\\n\", argc); return 0; }",
    "const x = await fetch(`https://example.com/api?q=${query}&limit=10`);",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "if x != nil && len(xs) > 0 { return xs[0], nil }",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
    "<div class=\"container\"><p>Hello &amp; welcome!</p></div>",
    "{\"name\": \"cria\", \"version\": \"0.1.0\", \"tags\": [\"llm\", \"edge\"], \"ok\": true, \"n\": null}",
    "a = [1, 2, 3]; b = {'k': (4, 5)}; c = a[::-1]",
    "x+=1; y-=2; z*=3; w/=4; v%=5; u**=2; t//=3; s<<=1; r>>=1",
    "=> -> <- :: ... .. ?? ?. !== === != <= >= && || >>> <<<",
    "// comment /* block */ # hash -- dash ;; semicolons",
    "$ ls -la /usr/share | grep -i unicode > out.txt 2>&1",
    "git commit -m \"Fix bug #123\" && git push origin main",
    "https://www.example.com/path/to/page.html?query=string&foo=bar#fragment",
    "mailto:someone@example.com user.name+tag@sub.domain.co.uk",
    "C:\\Program Files\\App\\bin\\app.exe /path/to/file.txt ~/.config/cria",
    "regex: ^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$",
    "@decorator\\n@@ -1,4 +1,5 @@ diff --git a/x b/x",
    "__init__ __main__ _private __dunder__ ___triple___",
    "lambda x: x**2 if x > 0 else -x",
    "matrix[i][j] = matrix[i-1][j] + matrix[i][j-1];",
    "0x00, 0xff, 0x7f, \\x00, \\xff, \\u00e9, \\U0001F600, &#x1F600; &#128512;",
    # CJK, Japanese, Korean
    "你好，世界！这是一个测试句子。",
    "我们今天去公园散步，天气很好。",
    "中文标点符号：，。！？；：“”‘’（）【】《》",
    "日本語のテキスト：こんにちは、世界！カタカナとひらがな。",
    "東京は日本の首都です。人口は約1400万人です。",
    "한국어 텍스트: 안녕하세요, 세계! 반갑습니다.",
    "漢字かな交じり文と English mixed 文章 123 です",
    "半角ｶﾀｶﾅと全角カタカナ",
    # Arabic, Hebrew, Persian
    "مرحبا بالعالم! هذه جملة اختبار.",
    "اللغة العربية جميلة جداً، أليس كذلك؟",
    "العدد ١٢٣ والعدد 456 في نفس الجملة",
    "שלום עולם! זהו משפט בדיקה.",
    "سلام دنیا! این یک جمله آزمایشی است.",
    "English then عربي then English again.",
    # Devanagari and other Indic
    "नमस्ते दुनिया! यह एक परीक्षण वाक्य है।",
    "हिन्दी में संयुक्ताक्षर: क्ष त्र ज्ञ श्र",
    "বাংলা ভাষা সুন্দর।",
    "தமிழ் மொழி மிகவும் பழமையானது.",
    "ಕನ್ನಡ ಭಾಷೆ",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    # other scripts
    "Привет, мир! Это тестовое предложение.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Γειά σου Κόσμε! Αυτή είναι μια δοκιμαστική πρόταση.",
    "Բարեւ աշխարհ",
    "გამარჯობა მსოფლიო",
    "ሰላም ለዓለም",
    "Ꭰ Ꭱ Ꭲ Cherokee ᏣᎳᎩ",
    "Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ ế ề ể ễ ệ",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Ærøskøbing, Ångström, Öl, Straße, façade, naïve, coöperate, jalapeño",
    "İstanbul ıiIİ Türkçe karakterler: ğüşöçı",
    "ß ẞ ﬁ ﬂ ﬀ ﬃ ligatures and Ǆ ǅ ǆ titlecase",
    # combining marks
    "cafe\u0301 vs café (decomposed vs precomposed)",
    "e\u0301\u0302\u0303\u0304 stacked combining marks",
    "Z\u0351\u0357\u0358a\u0346\u0350l\u0352g\u0350o\u0353 text",
    "a\u0308 o\u0308 u\u0308 A\u030a n\u0303",
    "\u0301 leading combining mark",
    "mark between\u0301letters and after space \u0301x",
    "Hangul jamo \u1100\u1161\u11a8 decomposed",
    # emoji
    "I love 🍕 and 🍣! 😀😃😄😁",
    "Family: 👨‍👩‍👧‍👦 Couple: 👩‍❤️‍👨 Kiss: 👩‍❤️‍💋‍👩",
    "Skin tones: 👋🏻 👋🏼 👋🏽 👋🏾 👋🏿 and 🧑🏽‍💻 🏃🏿‍♀️",
    "Flags: 🇺🇸 🇯🇵 🇩🇪 🇫🇷 🏳️‍🌈 🏴‍☠️",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣ and variation ☺️ ☺︎ ❤️ ❤",
    "🤖🧠💡🚀🔥✨🎉",
    "emoji😀glued😃to😄words",
    "Tag sequence: 🏴󠁧󠁢󠁳󠁣󠁴󠁿 (Scotland)",
    "Symbols: © ® ™ ° ± × ÷ µ ¶ § † ‡ • ‣ ※ ‰ ′ ″",
    "Math: ∀x ∈ ℝ, ∃y: x² + y² ≤ 1 ⇒ |x| ≤ 1; ∑ ∏ ∫ ∂ ∇ √ ∞ ≈ ≠ ≡",
    "Arrows ← ↑ → ↓ ↔ ⇐ ⇒ ⇔ and boxes ┌─┐│└─┘ and blocks █▓▒░",
    "Music ♩ ♪ ♫ ♬ and cards ♠ ♥ ♦ ♣ and chess ♔ ♕ ♖",
    "Currency signs: ¢ £ ¤ ¥ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ € ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₴ ₵ ₸ ₺ ₽ ₿",
    "Braille ⠓⠑⠇⠇⠕ and dingbats ✂ ✈ ✉ ✌ ✍ ✎ ✏",
    "Old Italic 𐌀𐌁𐌂 Gothic 𐌰𐌱𐌲 and math bold 𝐀𝐁𝐂 𝟎𝟏𝟐",
    "CJK extension B: 𠀀𠀁𠀂 and Linear B: 𐀀𐀁",
    # punctuation runs
    "!!!???...,,,;;;:::",
    "Wait... what?! Really?!?! No way!!!",
    "(parentheses) [brackets] {braces} <angles> «guillemets» ‹single›",
    "\"double\" 'single' `backtick` ´acute´",
    "---===+++***___###@@@$$$%%%^^^&&&",
    "¡Hola! ¿Qué tal? ¡¡Muy bien!!",
    "Japanese punctuation 「かぎ括弧」『二重』・中黒",
    "Ellipsis… and em dash— and interrobang‽ and reference mark※",
    "a.b.c.d 1.2.3.4 ...start end... .mid. -dash- _under_",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "' \" ` ´ ‘ ’ ‚ ‛ “ ” „ ‟",
    # special tokens inside text
    "<|begin_of_text|>Hello",
    "Hello<|end_of_text|>",
    "Text with <|eot_id|> in the middle of a line.",
    "<|start_header_id|>user<|end_header_id|>Hi there<|eot_id|>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>You are helpful.<|eot_id|>",
    "two in a row<|eot_id|><|eot_id|>and more",
    " <|eot_id|> spaces around <|eot_id|> ",
    "<|eot_id|>",
    "<|reserved_special_token_5|> reserved token text",
    "<|reserved_special_token_250|> last reserved token",
    "Llama 3.1 names: <|eom_id|> <|python_tag|> <|finetune_right_pad_id|>",
    "<|endoftext|> is GPT-2's and Falcon's end token",
    ">>TITLE<< >>ABSTRACT<< >>INTRODUCTION<< >>SUMMARY<< >>COMMENT<<",
    ">>ANSWER<< >>QUESTION<< >>DOMAIN<< >>PREFIX<< >>SUFFIX<< >>MIDDLE<<",
    ">>QUESTION<<What is 2+2?>>ANSWER<<4",
    "prefix>>TITLE<<suffix and >>TITLE<<>>ABSTRACT<<",
    # invalid-looking constructs
    "<|eot_id without close",
    "eot_id|> without open",
    "<|EOT_ID|> wrong case",
    "<| eot_id |> spaced",
    "<<|eot_id|>> doubled angles",
    "<|<|eot_id|>|> nested",
    "<|begin_of_text|<|end_of_text|>",
    "<|not_a_real_token|>",
    "<|> <||> <|||> |><|",
    ">>TITLE< >TITLE<< >>title<< >> TITLE <<",
    "\\u0000 \\x00 \\0 ^@ NUL escapes written out",
    "control chars: \x01\x02\x03\x07\x08\x1b[31mred\x1b[0m\x7f",
    "unit\x1fseparator\x1erecord\x1dgroup\x1cfile",
    "bell\x07 backspace\x08 escape\x1b delete\x7f",
    "private use \ue000\uf8ff and noncharacter-ish \ufffd replacement char",
    "\ufffd\ufffd\ufffd three replacement characters",
    "lone marks: \u0300\u0301 and variation selectors \ufe0f\ufe0e alone",
    "ZWJ alone \u200d and ZWJ between letters a\u200db",
    "right-to-left mark \u200f and left-to-right mark \u200e and \u202eRLO override\u202c",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abababababababababababababababababababababababababababababababababababab",
    "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "xXxXxXxXxXxXxXxXxXx",
    "The_quick_brown_fox_jumps_over_the_lazy_dog_1234567890",
    "ThisIsAVeryLongCamelCaseIdentifierThatKeepsGoingAndGoingForeverAndEver",
    "Mixed scripts: helloпривет你好مرحبا",
    "Invisible: a\u2060b\u2061c\u2062d\u2063e",
]


MULTILINE = [
    "line one\nline two",
    "line one\n\nline three after a blank line",
    "windows\r\nline endings\r\n",
    "old mac\rline endings\r",
    "mixed\n\r\n\r\n\nendings",
    "\n",
    "\n\n\n",
    "\r\n",
    " \n",
    "\n ",
    "  \n  \n  ",
    "trailing spaces   \nnext line",
    "trailing tab\t\nnext",
    "text\n    indented code\n        more indented\n",
    "def f(x):\n    return x + 1\n\nprint(f(2))\n",
    "{\n  \"a\": 1,\n  \"b\": [1, 2]\n}\n",
    "punctuation!!!\n\n???\r\n...",
    "word\n\n\n   \n\tword",
    "  \t \n \t  \n",
    "a\n1\n!\n \nb",
    "Dear Sir,\n\nThank you for your letter.\n\nSincerely,\nMe",
    "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "System: be brief\nUser: hi\nFalcon:",
    "\u4f60\u597d\n\u4e16\u754c\n",
    "emoji \U0001F600\n\U0001F44D\U0001F3FD\n",
    "NEL\x85inside\nand newline",
    "123\n456\n7890\n",
    "x\n\ny\r\n\r\nz",
    " \r\n \r\n",
    "\t\n\t\n\t",
]


def generated():
    rnd = random.Random(20240601)
    out = []
    # digit runs of every length up to 40, alone and in text
    for n in range(1, 41):
        digits = "".join(str((i * 7 + n) % 10) for i in range(n))
        out.append(digits)
        out.append("x" + digits + "y")
        out.append("a " + digits + " b")
    # whitespace runs before letters, digits, punctuation and at the end
    for n in range(1, 9):
        for ws in (" ", "\t", "\u00a0", " \t"):
            run = ws * n
            out.append("a" + run + "b")
            out.append("a" + run + "1")
            out.append("a" + run + "!")
            out.append("a" + run)
            out.append(run + "a")
    # random mixtures of character classes
    pool = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("0123456789") +
            list(" \t!?.,;:'\"-_()[]{}<>/\\|@#$%^&*+=~`") +
            list("éüñßøçåæœ") + list("你好世界") + list("مرحبا") + list("नमस्ते") +
            ["😀", "👍🏽", "\u0301", "\u00a0", "²", "½", "٣", "'s", "'LL", "<|eot_id|>", ">>TITLE<<"])
    for _ in range(260):
        n = rnd.randint(1, 40)
        out.append("".join(rnd.choice(pool) for _ in range(n)))
    return out


def fortune_lines():
    lines = []
    names = sorted(f for f in os.listdir(FORTUNES)
                   if not f.endswith((".dat", ".u8")) and os.path.isfile(os.path.join(FORTUNES, f)))
    for name in names:
        with open(os.path.join(FORTUNES, name), "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        for line in text.split("\n"):
            line = line.rstrip("\r")
            if line.strip() in ("", "%"):
                continue
            lines.append(line)
    seen = set()
    uniq = []
    for line in lines:
        if line not in seen:
            seen.add(line)
            uniq.append(line)
    # An even spread over all files: every k-th line.
    k = max(1, len(uniq) // 1500)
    return uniq[::k]


def check(line):
    if "\n" in line or "\r" in line:
        sys.exit("make_corpus: line contains a newline: %r" % line)
    for ch in line:
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            sys.exit("make_corpus: surrogate in %r" % line)
        if unicodedata.category(ch) == "Cn" and not (0xE0000 <= cp <= 0xE007F):
            sys.exit("make_corpus: unassigned U+%04X in %r" % (cp, line))


def main():
    assigned = set()
    with open("/usr/share/unicode/UnicodeData.txt", encoding="utf-8") as f:
        for row in f:
            assigned.add(int(row.split(";", 1)[0], 16))
    lines = HAND + generated() + fortune_lines()
    out = []
    seen = set()
    for line in lines:
        check(line)
        for ch in line:
            cp = ord(ch)
            if cp not in assigned and not (0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or
                                           0x20000 <= cp <= 0x2A6DF or 0xAC00 <= cp <= 0xD7A3 or
                                           0xE000 <= cp <= 0xF8FF or 0xE0000 <= cp <= 0xE007F):
                sys.exit("make_corpus: U+%04X is not assigned in /usr/share/unicode: %r" % (cp, line))
        if line not in seen:
            seen.add(line)
            out.append(line)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for line in out:
            f.write(line + "\n")
    with open(OUT_MULTI, "w", encoding="utf-8", newline="\n") as f:
        json.dump(MULTILINE, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("make_corpus: %d lines -> %s, %d multi-line cases -> %s" %
          (len(out), os.path.relpath(OUT), len(MULTILINE), os.path.relpath(OUT_MULTI)))


if __name__ == "__main__":
    main()
