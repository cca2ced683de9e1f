"""Explainable phrase detectors: the six conversational cues, and evidence words for the six emotional cues.

Every pattern is ours, written for customer-service speech. A match is dropped when a negator governs it
("I'm not cancelling", "no need for a manager"): the negator must stand shortly before the match in the same
clause with no new subject in between, so "if it isn't fixed I will cancel" still counts. Pure: no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from copilot.cues.taxonomy import Span

# Patterns per cue. Each is a regular expression matched case-insensitively on word boundaries.
# A leading "!" marks a pattern that negation does not cancel (the phrase is itself the evidence, as in
# "still not fixed" or "you're not very bright").
PATTERNS: dict[str, tuple[str, ...]] = {
    "repeat_contact": (
        r"(?:second|third|fourth|fifth|sixth|\d+(?:st|nd|rd|th)|umpteenth|hundredth|several|multiple|many|"
        r"countless|numerous) times?",
        r"(?:(?:two|three|four|five|six|seven|eight|nine|ten|\d+) times)(?! (?:a|per) (?:day|week|month|year))",
        r"!(?:called|rang|phoned|emailed|written|wrote|contacted|messaged|chatted|been on the phone|spoke to you|"
        r"spoken to you|reported this|reported it|complained|raised this|been in touch)(?: \w+){0,4}? "
        r"(?:before|already|again|last (?:week|month|time)|yesterday|earlier|twice|repeatedly|every day)",
        r"!(?:already|again) (?:called|rang|phoned|emailed|contacted|reported|explained|told|complained|raised|"
        r"spoken|spoke|been through)",
        r"!i(?:'ve| have) (?:already|been) (?:told|explained|called|through this)",
        r"!still (?:not|hasn'?t|haven'?t|isn'?t|doesn'?t|won'?t|no|waiting|broken|down|wrong|charging|missing)"
        r"(?: \w+)?",
        r"!(?:yet|once) again",
        r"!(?:every time|each time) i (?:call|ring|phone|contact|chat)",
        r"!(?:keep|kept) (?:calling|ringing|phoning|chasing|getting passed|being told|getting told)",
        r"!(?:nobody|no one|no-one) (?:ever )?(?:called|rang|got|gets|came) back",
        r"!(?:same|this) (?:problem|issue) (?:again|every month|keeps)",
        r"!(?:told|promised) (?:me )?(?:last time|before|it would be fixed)",
        r"!(?:for|over) (?:the )?(?:last|past) (?:\w+ )?(?:weeks|months)",
        r"!(?:chased|chasing) (?:this|it|you)",
    ),
    "escalation_request": (
        r"(?:speak|talk|put me through) (?:to|with) (?:a|your|the|someone|somebody)?\s?(?:\w+ )?"
        r"(?:manager|supervisor|boss|superior|team lead|senior)",
        r"(?:manager|supervisor|someone senior|somebody senior|someone in charge|team leader)"
        r"(?: please| now| right now)?",
        r"escalat(?:e|ing|ion)",
        r"(?:formal|official|written) complaint",
        r"(?:file|make|lodge|raise|log|submit) a complaint",
        r"ombudsman|regulator|ofcom|ofgem|trading standards|consumer (?:protection|rights)|small claims|"
        r"better business bureau|bbb|solicitor|lawyer|legal action|take (?:you|this) to court|sue you",
    ),
    "churn_risk": (
        r"cancel(?:l?ing|l?ed)? (?:my|the|our|this)? ?(?:\w+ )?(?:account|contract|subscription|plan|service|"
        r"membership|policy|order|direct debit|broadband|line)",
        r"(?:want|going|ready|about) to cancel",
        r"i(?:'ll| will| am|'m) (?:be )?cancel(?:l?ing)?",
        r"close (?:my|our|the) (?:\w+ )?account",
        r"(?:switch|switching|move|moving|go|going|leave|leaving|take my business) (?:over )?to "
        r"(?:a |another |your )?(?:competitor|provider|company|bank|network|supplier|someone else|elsewhere|"
        r"[a-z]+ instead)",
        r"(?:take|taking) my (?:business|money|custom) elsewhere",
        r"(?:i'?m|i am|we'?re|we are) (?:leaving|done with you|out|going elsewhere)",
        r"(?:leave|leaving|quit|quitting|ditch|ditching|dump|dumping) (?:you|your company|this company)",
        r"end (?:my|the|our) (?:contract|subscription|membership)",
        r"(?:port|porting) my number",
        r"(?:last|final) (?:straw|chance)",
        r"(?:never|won'?t) (?:use|buy from|order from|recommend) you(?:r company)? again",
        r"(?:better|cheaper) (?:deal|offer|price) (?:elsewhere|from|with)",
    ),
    "urgency": (
        r"urgent(?:ly)?|asap|as soon as possible|immediately|right (?:now|away)|straight away|emergency",
        r"(?:by|before|until) (?:today|tonight|tomorrow|monday|tuesday|wednesday|thursday|friday|saturday|"
        r"sunday|the weekend|end of (?:the )?day|\d{1,2}(?::\d\d)? ?(?:am|pm)|noon|midnight|close of business)",
        r"(?:today|tonight|this (?:morning|afternoon|evening))(?! (?:is|was) fine)",
        r"deadline|running out of time|no time|time[- ]sensitive|can'?t wait|cannot wait|any minute",
        r"(?:in|within) (?:the next )?(?:an? |\d+ |one |two |few )?(?:hour|hours|minutes)",
        r"(?:flight|train|surgery|appointment|closing|interview|wedding|funeral|exam) (?:is |leaves |at )?"
        r"(?:today|tomorrow|tonight|in)",
        r"need (?:it|this|them|the \w+) (?:now|today|fixed today|sorted today)",
        r"hurry|quickly|fast as you can",
    ),
    "abuse": (
        r"!(?:you(?:'re| are)|ur|you)(?: such| a| an| so| absolutely| fucking| bloody| completely| totally)* "
        r"(?:an? )?(?:idiot|moron|stupid|useless|incompetent|clown|joke|imbecile|cretin|pathetic|worthless|"
        r"brain ?dead|halfwit|waste of space|muppet|donkey|thick|dumb|liar|scum|retard\w*|bitch|bastard|prick|"
        r"dickhead|arsehole|asshole|piece of (?:shit|crap|garbage)|clueless)",
        r"!(?:shut up|shut your (?:mouth|face)|go to hell|screw you|fuck (?:you|off)|piss off|get lost|drop dead)",
        r"!(?:idiot|moron|imbecile|cretin|halfwit|dickhead|arsehole|asshole|bitch|bastard|prick|muppet)s?",
        r"!(?:i(?:'ll| will| am going to|'m going to|'m gonna| gonna)) (?:find|come|hunt|track|get|hurt|kill|"
        r"smash|beat|make you pay|make sure you)(?: you| (?:down )?where you live| for this| pay)?",
        r"!(?:know|find out) where you live",
        r"!(?:you|ya) (?:people )?(?:should|deserve to) (?:be fired|be sacked|lose your job|die|rot)",
        r"!(?:get you|have you) (?:fired|sacked)",
        r"!(?:not very|not the sharpest|not exactly) (?:bright|smart|clever|tool in the shed)",
        r"!(?:are you|r u) (?:deaf|thick|stupid|dumb|an idiot|for real|simple)",
        r"!(?:do you even|can you even) (?:speak english|understand|think)",
    ),
    "crisis": (
        r"!(?:passed away|passed on|died|dying|death of|funeral|bereave\w*|widow(?:ed|er)?|lost my "
        r"(?:husband|wife|partner|mum|mom|mother|dad|father|son|daughter|child|baby|brother|sister|grandmother|"
        r"grandfather|nan|gran))",
        r"!(?:terminal|cancer|chemo\w*|stroke|heart attack|in hospital|intensive care|icu|hospice|"
        r"seriously ill|critically ill|life support|diagnos(?:ed|is) with|surgery|a&e|emergency room|"
        r"mental health crisis)",
        r"!(?:house|home|flat) (?:fire|flood(?:ed)?|burn(?:ed|t) down)|(?:fire|flood|storm|hurricane|earthquake|"
        r"tornado) (?:destroyed|damaged|hit|took)|flooded|evacuated|homeless|eviction|evicted",
        r"!(?:can'?t|cannot|couldn'?t) (?:afford|pay for|feed)(?: \w+)?(?: food| rent| to eat| my kids| the kids| "
        r"my children| heating| my mortgage| anything)|no money (?:left|for food)|food bank|bankrupt\w*|"
        r"lost my job|made redundant|laid off|in debt|debt collectors?|bailiffs?",
        r"!(?:scam(?:med)?|scammer|fraudster|defrauded|conned|victim of fraud|stolen identity|identity theft|"
        r"someone stole|hacked|unauthori[sz]ed (?:transaction|payment|charge)s?|i didn'?t make (?:this|these|that)"
        r"(?: payment| transaction| charge)s?)",
        r"!(?:kill myself|end it all|end my life|suicid\w*|self[- ]harm|hurt myself|don'?t want to (?:live|be here)|"
        r"no reason to live|can'?t go on|better off dead|not worth living)",
        r"!domestic (?:abuse|violence)|(?:abusive|violent) (?:partner|husband|wife|ex)",
    ),
    # Evidence words for the emotional cues: they explain a model decision, they do not make it alone.
    "frustration": (
        r"frustrat\w*|furious|fuming|livid|angry|anger|annoy\w*|irritat\w*|fed up|sick (?:and tired )?of|"
        r"had enough|enough is enough|ridiculous|unacceptable|outrageous|disgust\w*|appall\w*|shocking|"
        r"pathetic|absurd|joke|nonsense|rubbish|terrible|awful|horrendous|useless service|waste of (?:my )?time|"
        r"can'?t believe|cannot believe|unbelievable|seriously\?|what the hell|wtf|for god'?s sake|pissed off|"
        r"mad|exasperat\w*|infuriat\w*|not happy|not good enough|thanks for nothing|oh great|just great|"
        r"(?:fantastic|brilliant|wonderful|amazing|great) (?:service|job|work)(?:,| ,|\.|!)? ?(?:really|not)?|"
        r"how hard can it be|hopeless|shambles|disgrace\w*|sick to death",
    ),
    "disappointment": (
        r"disappoint\w*|let down|letdown|expected (?:better|more)|hoped for (?:better|more)|such a shame|"
        r"what a shame|pity|underwhelm\w*|not what (?:i|we) (?:expected|paid for|ordered)|"
        r"used to be (?:good|great|better)|shame on you|gutted|not impressed|unimpressed|dissatisfied|"
        r"(?:so|very|really) sad to see",
    ),
    "confusion": (
        r"confus\w*|(?:don'?t|do not|doesn'?t|didn'?t|can'?t|cannot) (?:really )?(?:understand|get it|follow|"
        r"work out|figure out|see why|tell)|makes? no sense|doesn'?t make (?:any )?sense|not making sense|"
        r"unclear|puzzl\w*|baffl\w*|bewilder\w*|perplex\w*|lost me|no idea|not sure (?:why|what|how|where|if)|"
        r"what does (?:this|that|it) mean|what do you mean|why (?:is|am|was|has|have|would|did|does) |"
        r"how come|can you explain|could you explain|please explain|explain (?:why|what|how)|which one|mixed up",
    ),
    "anxiety": (
        r"worr\w*|anxious|anxiety|scared|afraid|fear\w*|nervous|panic\w*|stress\w*|frighten\w*|terrified|"
        r"freaking out|concern(?:ed|ing)|uneasy|on edge|what if|losing sleep|can'?t sleep|dread\w*|alarm(?:ed|ing)|"
        r"desperate",
    ),
    "sadness": (
        r"sad(?:ness|dened)?|heartbroken|heart ?broken|devastat\w*|upset|depress\w*|miserable|unhappy|grie\w*|"
        r"crying|in tears|tearful|lonely|low|down in the dumps|gutted|distraught|sorrow\w*|lost my|passed away|"
        r"miss (?:him|her|them)|hopeless|broken",
    ),
    "gratitude": (
        r"thank(?:s| you(?: (?:so|very) much)?|ful)?|thanx|thx|cheers|grateful|gratitude|appreciat\w*|relie(?:f|ved)|"
        r"lifesaver|life saver|"
        r"you'?re a star|you'?ve been (?:great|brilliant|amazing|so helpful|wonderful|really helpful)|"
        r"(?:so|very|really) helpful|brilliant,? thanks|you'?re (?:a )?(?:star|legend|angel)",
    ),
}

NEGATORS = frozenset({
    "not", "no", "never", "nobody", "nothing", "dont", "don't", "doesn't", "doesnt", "didn't", "didnt", "won't",
    "wont", "wouldn't", "wouldnt", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt", "haven't", "havent",
    "hasn't", "hasnt", "can't", "cant", "cannot", "shouldn't", "without", "neither", "nor", "hardly",
})
# A new subject between negator and match ends the negator's reach ("if it isn't fixed I will cancel").
SUBJECTS = frozenset({"i", "you", "we", "they", "he", "she", "it", "i'll", "i'm", "i've", "we'll", "we're",
                      "you're", "they're", "but", "so", "because", "if", "unless", "otherwise", "or"})
CLAUSE_BREAK = re.compile(r"[.!?;:,\n]|\bbut\b|\bhowever\b|\bthough\b")
WORD = re.compile(r"[\w']+")
NEGATION_REACH = 4  # words


@dataclass(frozen=True)
class Rule:
    """One compiled pattern of one cue."""

    cue: str
    regex: re.Pattern
    negatable: bool


def _compile() -> tuple[Rule, ...]:
    rules = []
    for cue, patterns in PATTERNS.items():
        for pattern in patterns:
            negatable = not pattern.startswith("!")
            body = pattern.lstrip("!")
            rules.append(Rule(cue, re.compile(rf"(?<![\w']){body}(?![\w'])", re.IGNORECASE), negatable))
    return tuple(rules)


RULES = _compile()


def normalise_quotes(text: str) -> str:
    """Replace curly apostrophes with straight ones, keeping every character's position."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


def is_negated(text: str, start: int) -> bool:
    """Whether a negator governs the words starting at `start` (same clause, at most four words before)."""
    clause_start = 0
    for brk in CLAUSE_BREAK.finditer(text, 0, start):
        clause_start = brk.end()
    words = [w.lower() for w in WORD.findall(text[clause_start:start])][-NEGATION_REACH:]
    for word in reversed(words):
        if word in NEGATORS or word.endswith("n't"):
            return True
        if word in SUBJECTS:
            return False
    return False


def find_spans(text: str, cue: str | None = None) -> dict[str, list[Span]]:
    """Spans of every pattern match per cue (or for one cue), negated matches dropped, overlaps merged."""
    clean = normalise_quotes(text)
    found: dict[str, list[Span]] = {}
    for rule in RULES:
        if cue is not None and rule.cue != cue:
            continue
        for match in rule.regex.finditer(clean):
            if match.end() == match.start():
                continue
            if rule.negatable and is_negated(clean, match.start()):
                continue
            found.setdefault(rule.cue, []).append((match.start(), match.end()))
    return {name: merge_spans(spans) for name, spans in found.items()}


def merge_spans(spans: list[Span]) -> list[Span]:
    """Sort spans and merge those that overlap or touch."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]
