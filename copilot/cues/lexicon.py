"""Explainable phrase detectors: the six conversational cues, and evidence words for the six emotional cues.

Every pattern is ours, written for customer-service speech. A match is dropped when a negator governs it
("I'm not cancelling", "no need for a manager"): the negator must stand shortly before the match in the same
clause with no new subject in between, so "if it isn't fixed I will cancel" still counts. Pure: no I/O.
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from copilot.cues.taxonomy import Span
from copilot.text import Normalised, normalise

# Patterns per cue, matched case-insensitively, every alternative on word boundaries. Prefixes:
#   "!"  negation does not cancel the match (the phrase is itself the evidence: "still not fixed");
#   "?"  the phrase is ambiguous ("right now", "cancer", "I'm leaving"): it gives evidence words, and the cue fires
#        only when the model's cue head agrees (see copilot.cues.detector); unmarked conversational phrases fire
#        on their own;
#   "-"  an everyday phrase that only sounds like the cue ("overdosed on coffee", "my battery died"): it rules out
#        the cue unless an unambiguous phrase states it;
#   "+"  a disclosure of danger to life ("I want to end my life"): it fires whatever the model says; every other
#        explicit phrase may be overruled by a cue head that is all but sure it is not meant ("Fast and Furious");
#   "="  for an emotional cue, an explicit phrase that fires the cue on its own ("I'm furious"), where plain
#        evidence words only support the model's decision.
# The pseudo-cue "_sarcasm" marks praise that means the opposite; it counts as explicit frustration and
# cancels gratitude in the same text.
DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|the weekend|tomorrow|tonight|today|then|noon|midnight)"
KIN = (r"(?:husband|wife|partner|mum|mom|mother|dad|father|son|daughter|child|baby|boy|girl|brother|sister|"
       r"grandmother|grandfather|grandad|grandma|nan|gran|aunt|uncle|friend|fiancee?)")  # accents are folded
# What may stand between the words of a self-harm phrase: a space or a line break, or a joiner in place of the
# space ("kill-myself", "kill_myself", "kill.myself"); never a joiner and a space, which would reach across two
# sentences ("the calls never end. It all started...").
JOIN = r"(?:[ \n]|[-_.~*+/|]{1,2})"
# Insults with digits or an asterisk for letters ("1d10t", "st*pid").
IDIOT, STUPID, MORON, USELESS = r"[i1!|]d[i1!|*][o0*]t", r"st[u*v]p[i1!*]d", r"m[o0*]r[o0*]n", r"us[e3*]l[e3*]ss"


def joined(phrases: str) -> str:
    """Alternative phrases whose words may be joined by punctuation as well as a space (see JOIN)."""
    return phrases.replace(" ", JOIN)


def spaced(phrase: str) -> str:
    """A phrase written out letter by letter ("k i l l m y s e l f", "s.u.i.c.i.d.e"): every letter apart."""
    gap = r"[ ._~*+/|-]"
    return f"{gap}{{1,2}}".join(gap.join(word) for word in phrase.split())


PATTERNS: dict[str, tuple[str, ...]] = {
    "repeat_contact": (
        r"!(?:second|third|fourth|fifth|sixth|\d+(?:st|nd|rd|th)|umpteenth|hundredth) time(?= (?:i'?ve|i have|i'?m|"
        r"i am|that i|we'?ve|i'?ll|calling|ringing|phoning|contacting|asking|chasing|writing|emailing|explaining|"
        r"messaging|dm'?ing|tweeting|of asking))",
        r"!(?:my |this is my |this is the )(?:second|third|fourth|fifth|sixth|\d+(?:st|nd|rd|th)) "
        r"(?:call|email|message|chat|dm|tweet|complaint|time (?:calling|asking|writing|contacting|messaging))",
        r"(?:called|rung|rang|phoned|emailed|written|wrote|contacted|messaged|chatted|chased|reported(?: this| it)?|"
        r"complained|explained(?: this| it)?|answered|been on (?:the phone|chat|to you)|been in touch|dm'?d|"
        r"tweeted|spoken to (?:you|someone)|sent (?:it|this|them|the \w+))"
        r"(?: \w+){0,4}? (?:before|already|again|twice|three times|four times|five times|\d+ times|repeatedly|"
        r"last (?:week|month|time)|yesterday|every day|several times|multiple times)",
        r"!(?:asked|requested|told|reported|called|rang|emailed|messaged|dm'?d|chased|tried|explained) "
        r"(?:\w+ ){0,3}?(?:so many|countless|multiple|several|numerous|many|\d+) times",
        r"!(?:twice|three times|four times|five times|several times|multiple times|\d+ times) (?:already|now|before|"
        r"this week|about this|about it)",
        r"!(?:already|again) (?:called|rang|rung|phoned|emailed|contacted|reported|explained|told|complained|raised|"
        r"spoken|spoke|been through|gave|given|dm'?d|messaged)",
        r"!i(?:'ve| have) already (?:told|explained|called|been through this|given)",
        r"?!i(?:'ve| have) been (?:told|through this)",
        r"!still (?:waiting|nothing|no (?:reply|response|answer|word|update|refund|sign|callback|call back|fix))",
        r"?!still (?:not|hasn'?t|haven'?t|isn'?t|doesn'?t|no|broken|down|wrong|locked)(?! come)(?: \w+)?",
        r"!(?:yet|once) again|(?:happened|broken|down|failed|crashed|charged|cancell?ed|delayed) again",
        r"!(?:every|each) time (?:i|someone|somebody|you|they) (?:call|ring|phone|contact|chat|am told|'m told|"
        r"tells? me|told me)",
        r"!(?:keep|kept|keeps) (?:calling|ringing|phoning|chasing|getting passed|being told|getting told|"
        r"happening|coming back|writing to|sending)",
        r"!(?:nobody|no one|no-one|never) (?:ever )?(?:calls?|called|rang|rings|got|gets|came|comes|rung) (?:me )?back",
        r"!(?:was|were|i was|we were|been) (?:told|promised) (?:\w+ ){0,6}?(?:last (?:week|time|month)|yesterday|"
        r"on (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|before|it would|it'?d|a callback)",
        r"!(?:told|promised) (?:me )?(?:last time|before|it would be fixed)",
        r"!(?:chased|chasing) (?:this|it|you|them)",
        r"!(?:same|this) (?:problem|issue) (?:again|every|keeps)",
        r"!(?:another|a second|a third) (?:call|engineer no-show|no-show|missed appointment)",
        r"!(?:three|four|five|\d+) (?:calls|emails|engineer no-shows|no-shows)",
    ),
    "escalation_request": (
        r"(?:speak|talk|put me through|get me|transfer me) (?:to|with|through to) (?:your|a|the|someone|somebody)?"
        r"\s?(?:manager|supervisor|boss|superior|team lead(?:er)?|senior|someone senior|someone in charge)",
        r"?(?:speak|talk) (?:to|with) (?:the|a|your) \w+ (?:manager|supervisor)",
        r"(?:want|need|like|get|fetch|demand|give me|put on|ask for|can i (?:have|get|speak to)) (?:to speak to )?"
        r"(?:a|your|the|some) ?(?:manager|supervisor|team leader|boss|superior)",
        r"?(?:manager|supervisor|someone senior|somebody senior|someone in charge|someone more senior)"
        r"(?: please| now| right now|\?| to call me)",
        r"escalate (?:this|it|my|the)|(?:want|need|like) (?:this|it) escalated|escalation (?:team|request)",
        r"(?:formal|official|written) complaint|(?:file|make|lodge|raise|log|submit|put in) a complaint",
        r"ombudsman|regulator|ofcom|ofgem|ofwat|fca|trading standards|consumer (?:protection|rights|court|forum)|"
        r"small claims|better business bureau|bbb|take (?:you|this|them) to court|"
        r"(?:i'?ll|i will|going to|gonna) (?:sue|take legal action|get a lawyer|see a solicitor)|"
        r"(?:going|go) to the (?:press|papers|media)|reporting (?:you|this) to",
        r"?solicitor|lawyer|legal action|sue you",
    ),
    "churn_risk": (
        r"cancel(?:l?ing)? (?:my|the|our|this|all my)? ?(?:\w+ ){0,2}(?:account|contract|subscription|plan|"
        r"service|membership|policy|broadband|line|mortgage|cover)",
        r"?(?:want|going|ready|about|planning) to (?:cancel|leave|switch)(?! (?:the|my) (?:old|direct|booking|order))",
        r"?i(?:'ll| will| am|'m) (?:be )?(?:cancell?ing|leaving|switching|off)(?! (?:the|my) (?:booking|order|trip))",
        r"!cancel (?:it|the lot|everything)[.!]",
        r"close (?:all )?(?:my|our) (?:\w+ )?accounts?",
        r"(?:switch|switching|move|moving|go|going|leave|leaving|take|taking|went) (?:over )?(?:with|to|for) "
        r"(?:a |another |an |someone |some )?(?:different |other |cheaper )?(?:competitor|provider|company|bank|network|"
        r"supplier|insurer|airline|someone else|elsewhere|bt|sky|virgin|octopus|nationwide|aviva|vodafone|ee|o2)",
        r"?(?:switch|switching|move|moving|went) (?:over )?to (?:them|@\w+)",
        r"(?:take|taking|move|moving) (?:my|our|the) (?:\w+ )?(?:business|money|custom|mortgage|savings|salary|"
        r"accounts?|everything) (?:elsewhere|to)|taking everything to",
        r"(?:i'?m|i am|we'?re|we are) (?:done with (?:you|your company|this company)|going elsewhere)",
        r"?(?:i'?m|i am|we'?re|we are) (?:leaving|off)",
        r"(?:leave|leaving|quit|quitting|ditch|ditching|dump|dumping|be rid of) (?:you|your company|this company)",
        r"end (?:my|the|our) (?:contract|subscription|membership)|port(?:ing)? my number|shopping around",
        r"(?:last|final) straw|one reason not to (?:switch|leave|go)|plenty of other (?:banks|providers|companies|"
        r"networks|suppliers|insurers)",
        r"(?:never|won'?t) (?:be )?(?:use|using|buy|buying|order|ordering|fly|flying|bank|banking|shop|shopping|"
        r"recommend|recommending|stay|staying) (?:from |with |at )?you(?:r company)? again",
        r"!(?:don'?t|do not) (?:auto-?renew|renew)|not renewing",
        r"(?:better|cheaper) (?:deal|offer|price|quote|policy) (?:elsewhere|from|with)|found a cheaper",
        r"thinking (?:about|of) (?:moving|switching|leaving|going)",
        r"!#(?:switch(?:ing|ed)?to|moving ?to|goodbye|bye|boycott|delete|uninstall)\w*|#neveragain|uninstall(?:ing|ed)",
    ),
    # Urgency is said in passing all day ("I need it by Friday", "right now I'm at work"): every rule here needs
    # the model's agreement that this text presses for time.
    "urgency": (
        r"?urgent(?:ly)?|asap|as soon as (?:possible|you can)|immediately|right (?:now|away)|straight away|"
        r"emergency(?! (?:credit|contact|services? number))",
        rf"?!(?:by|before|until) (?:{DAY}|end of (?:the )?day|\d{{1,2}}(?::\d\d)? ?(?:am|pm|o'?clock)|\d{{1,2}}:\d\d|"
        r"close of business|(?:this|next) (?:morning|afternoon|evening|week)|the \d{1,2}(?:st|nd|rd|th)|"
        r"we (?:fly|leave|go))(?! (?:foot|feet|metres?|meters?|inches|cm|mm|m|ft|in|x|by)\b)",
        r"?(?:need|needs|needed|have to|must|got to) (?:\w+ ){0,6}?(?:today|tonight|now|tomorrow|"
        r"somewhere tonight|by \w+)",
        r"?(?:flight|train|surgery|appointment|funeral|wedding|interview|exam|client call|meeting|hearing|closing|"
        r"court date)(?:'s| is| leaves| starts)? (?:at|today|tomorrow|tonight|on|in \d)",
        r"?deadline|running out of time|run(?:ning)? out (?:of|on) (?:my|the|our)|no time|time[- ]sensitive|"
        r"any minute|won'?t last (?:much )?longer|last chance|hurry|"
        r"(?:in|within) the (?:next )?(?:hour|few hours|\d+ minutes)",
    ),
    "abuse": (
        r"!(?:you(?:'re| are)|ur|u r|u are|you|you lot are|you guys are)(?: such| a| an| so| absolutely| fucking| "
        rf"bloody| completely| totally| the most| actually| just| bunch of| pack of)* (?:an? )?(?:{IDIOT}s?|{MORON}s?|"
        rf"{STUPID}|{USELESS}|incompetent|clowns?|imbeciles?|cretins?|pathetic|worthless|brain ?dead|halfwits?|"
        r"waste of space|muppets?|donkeys?|thick|dumb|dense|liars?|scum|crooks?|thieves|cheats?|cheaters?|frauds|"
        r"scammers|dolts?|numpty|retard\w*|bitch|bastards?|pricks?|dickheads?|arseholes?|assholes?|"
        r"piece of (?:shit|crap|garbage)|clueless|jobsworths?|the worst)",
        r"!(?:shut up|shut your (?:mouth|face)|go to hell|screw you|fuck (?:you|off)|piss off|drop dead)",
        r"?!get lost",
        rf"!(?:{IDIOT}|{MORON}|imbecile|cretin|halfwit|dickhead|arsehole|asshole|bitch|bastard|prick|jobsworth|dolt|"
        r"cheater)s?",
        r"?!(?:muppet|numpty|parrot|clown|thief|thieves|crook|liar|cheat|fraudster|scammer)s?",
        # A threat needs its object: a person ("I'll find you", "I'll hurt you") or where they live, never "I'll get
        # the flour out" or "I will get back to you".
        r"!(?:i(?:'ll| will| am going to|'m going to|'m gonna| gonna)) (?:"
        r"(?:hurt|kill|smash|beat|punch|stab|batter|slap|strangle|murder|deck|thump) (?:you|ya|u|your \w+)|"
        r"(?:find|hunt|track) (?:you|ya|u)(?: down| out)?(?= *(?:$|[.!?,]| and | down| out| for this))|"
        r"(?:come|go) (?:for|after) (?:you|ya|u)|make (?:you|u|sure you) (?:pay|regret|suffer)|"
        r"get (?:you|ya|u) (?:for this|back for this))",
        r"!(?:know|find out) where (?:you live|your office is|you work)|you'?ll regret (?:it|this)|watch your back",
        r"!(?:you|ya|people like you) (?:people )?(?:should|deserve to|ought to) (?:be fired|be sacked|lose your job|die|rot)",
        r"!(?:get you|have you) (?:fired|sacked)|pathetic excuse for",
        r"!(?:not very|not the sharpest|not exactly) (?:bright|smart|clever|tool in the shed)",
        r"!(?:are you|r u) (?:actually |just )?(?:deaf|thick|stupid|dumb|an idiot|simple|dense|brain ?dead)",
        r"!(?:do you even|can you even) (?:speak english|understand|think)|(?:train|trained) you (?:lot )?to be this",
    ),
    "crisis": (
        rf"!(?:passed away|death of|funeral|bereave\w*|widow(?:ed|er)?|death certificate|"
        rf"probate|executor|lost (?:my|our) {KIN}|(?:since|after) (?:my |our )?{KIN} (?:died|passed|went)|"
        rf"late {KIN}|(?:my|our) {KIN} (?:passed|went|died|is dying)|we lost (?:\w+ ){{1,2}}(?:in|last|on|suddenly|recently))",
        r"?!(?:died|dying|passed on|(?:since|after) (?:\w+ )?(?:died|passed))",
        r"!(?:terminal(?:ly)? ill|terminal (?:cancer|illness|diagnosis|condition)|chemo\w*|heart attack|"
        r"intensive care|icu|hospice|seriously ill|critically ill|life support|diagnos(?:ed|is) with|"
        r"on oxygen|oxygen concentrator|dialysis|can'?t breathe|mental health crisis|"
        r"(?:had|has|having|suffered|since|after|from) (?:a|her|his|my) (?:\w+ )?stroke(?! of))",
        r"?!(?:cancer|in hospital|into hospital|a&e|emergency room)",
        r"!(?:house|home|flat|kitchen) (?:fire|flood(?:ed)?|burn(?:ed|t) down)|(?:fire|flood|storm|hurricane|"
        r"earthquake|tornado) (?:destroyed|damaged|hit|took)|in the (?:fire|flood)|evacuated|homeless|"
        r"evict(?:ion|ed|ing)|coming through the ceiling|since the (?:fire|flood)",
        r"?!flooded",
        r"!(?:can'?t|cannot|couldn'?t) (?:afford|pay for|feed)(?: \w+)?(?: food| rent| to eat| my kids| the kids|"
        r" my children| heating| the heating| my mortgage| anything| the funeral| to put the heating on| the arrears|"
        r" arrears| the repayments| my bills)|"
        r"no money (?:left|for food)|food bank|bankrupt\w*|debt collectors?|bailiffs?|enforcement agents?|"
        r"choosing between food|nothing left (?:till|until) payday",
        r"!(?:scam(?:med)?|scammer|fraud(?:ster|ulent)?(?! (?:team|department|line|prevention|check|alert))|defrauded|"
        r"conned|stolen identity|identity theft|someone stole|extort\w*|blackmail\w*|"
        r"(?:card|phone|wallet|purse|identity|money|account)(?:'s| has| was| got)?(?: been)? stolen|"
        r"unauthori[sz]ed (?:transaction|payment|charge)s?|(?:payments?|transactions?|charges?) (?:\w+ ){0,4}?"
        r"(?:i|we) didn'?t make|didn'?t authori[sz]e|(?:opened|took out|taken out|applied for) "
        r"(?:\w+ ){0,4}in my name|pretending to be)",
        r"?!(?:hacked|wasn'?t me)",
        r"+!(?:" + joined("k[i1!|]ll mys[e3]lf|end it all|end my life|take my own life|taking my own life|hurt myself|"
                         "unalive myself") + r"|killmyself|kill my self(?![- ](?:esteem|confidence|worth|respect|image))|"
        r"suicid\w*|self[-_. ]?harm|don'?t want to (?:live|be here)|no reason to live|can'?t go on|"
        r"better off (?:dead|without me)|not worth living|don'?t see the point (?:in|of) "
        r"(?:carrying on|going on|living|anything))",
        "+!" + "|".join(spaced(phrase) for phrase in ("kill myself", "suicide", "end my life")),
        # Negation counts here: "I don't want to die" is no crisis; nor is "I want to die of embarrassment".
        rf"+(?:(?:want(?:s|ed)?|wanting){JOIN}to|wanna){JOIN}die(?! (?:of|from|laughing|happy|old)\b)|"
        r"wish (?:i was|i were|i could be) dead|wish i could die|"
        r"overdos(?:e|ed|es|ing)(?! on (?:coffee|caffeine|sugar|chocolate))",
        r"+!domestic (?:abuse|violence)|(?:abusive|violent) (?:partner|husband|wife|ex)",
        # Everyday words that only sound like a crisis: neither the cue head alone nor an ambiguous phrase may
        # raise one where these stand (an unambiguous phrase still does).
        r"-overdos(?:e|ed|es|ing) on (?:coffee|caffeine|sugar|chocolate|carbs|telly|tv|netflix|sun)",
        r"-(?:dying|die) (?:to|for) (?:see|try|know|hear|get|meet|go|watch|read)|to die for|killing it|killed it",
        r"-(?:phone|battery|laptop|car|engine|tablet|kindle|headphones|signal|torch|remote)(?:'s| has| had| just)* died",
    ),
    # Praise that means the opposite. An opening "Great," or "Perfect!" alone is not enough ("Great, thanks." is
    # sincere): "?" rules count only beside a sign that something went wrong (see SOURED).
    "_sarcasm": (
        r"?!(?:^|(?<=[.!?] ))(?:oh )?(?:great|brilliant|perfect|lovely|marvellous|fantastic|wonderful|wow|terrific|"
        r"super|excellent|nice one|well done|what a surprise|typical)[,.!]",
        r"?!(?:oh great|oh brilliant|oh perfect|oh marvellous|oh lovely|oh wonderful|oh fantastic)",
        r"?!(?:oh )?(?:well )?(?:thanks|cheers) a (?:bunch|lot)(?=[,.!?])",
        r"?!(?:fantastic|brilliant|wonderful|amazing|great|stellar|top notch) (?:service|job|work|stuff)[.!]",
        r"!(?:thanks|thank you|cheers)(?: a (?:bunch|lot)| so much| very much| ever so much)? for "
        r"(?:nothing|ruining|wasting|messing|screwing|losing|breaking|ignoring|ghosting|overcharging|double charging|"
        r"leaving me|keeping me waiting|letting me down|the runaround|another delay|cancell?ing my|charging me twice)",
        r"!(?:thanks a (?:bunch|lot) for|thanks ever so much for|cheers for the|"
        r"i'?ll treasure it|really rewards? my loyalty|quite an achievement|truly impressive|very priority|"
        r"it'?s not like i need|because obviously i|love paying for|love (?:waiting|being (?:on hold|ignored|charged))|"
        r"clearly\.$)",
    ),
    "frustration": (
        r"=frustrat\w*|=furious|=fuming|=livid|=(?:so |really |very )angry|=pissed off|=fed up|"
        r"=sick (?:and tired |to death )?of|=had enough|=enough is enough|=doing my head in|=at my wits'? end|"
        r"=wit'?s end|=beyond a joke|=(?:absolute|complete|total|bloody|utter) (?:joke|shambles|disgrace|nightmare)|"
        r"=(?:it'?s|this is|what) a (?:joke|farce|disgrace|shambles)|=ridiculous|=unacceptable|=outrageous|"
        r"=disgusting|=disgrace\w*|=appall\w*|=shambles|=pathetic|=infuriat\w*|=exasperat\w*|=annoyed|=annoying|"
        r"=irritat\w*|=unbelievable|=can'?t believe|=cannot believe|=waste of (?:my )?time|=i'?m over it|"
        r"=(?:i'?m|i am) done with (?:this|you)|=going round in circles|=for god'?s sake|=for crying out loud|"
        r"=how hard can it be|=how is this (?:even )?allowed|=this bloody|=bloody \w+|=seriously\?|=what the hell|=wtf|"
        r"angry|anger|mad|rubbish|terrible|awful|horrendous|shocking|absurd|nonsense|hopeless|not happy|"
        r"not good enough|(?:really|so|very) (?:upset|cross)",
    ),
    "disappointment": (
        r"=disappoint\w*|=let down|=letdown|=expected (?:better|more|a lot more|much more)|=hoped (?:for )?"
        r"(?:better|more|it would be better)|=i'?d hoped|=kick in the teeth|=gone (?:right )?downhill|"
        r"=used to (?:rave|be (?:good|great|better))|=not what (?:i|we) (?:expected|paid for|ordered)|=gutted|"
        r"=(?:such a|what a|bit of a) (?:shame|pity|let down)|=shame (?:really|to be treated)|=not impressed|"
        r"=unimpressed|=dissatisfied|=thought you (?:were|would|'d) (?:be )?(?:better|meant|reliable)|"
        r"=evidently not|underwhelm\w*|pity|shame",
    ),
    "confusion": (
        r"=confus\w*|=(?:don'?t|do not|doesn'?t|didn'?t|can'?t|cannot) (?:really |quite )?(?:understand|get it|"
        r"follow|work out|figure out|make sense of)|=makes? no sense|=doesn'?t make (?:any )?sense|=not making sense|"
        r"=(?:a bit |bit |totally |completely )?lost as to|=puzzl\w*|=baffl\w*|=bewilder\w*|=perplex\w*|"
        r"=no idea (?:what|why|where|whether|how to)|=not sure (?:why|what|how|where)|"
        r"=what does (?:this|that|it) (?:even )?mean|=what do you mean|=(?:can|could) (?:you|someone|somebody) "
        r"(?:please )?explain|=please explain|=don'?t (?:even )?know where to start|=mixed up|=unclear|"
        r"why (?:is|am|was|has|have|would|did|does) |how come|which one",
    ),
    "anxiety": (
        r"=worr\w*(?<!worry)(?<!worries)|=anxious|=anxiety|=scared|"
        r"=(?:so|really|very|too|terribly|genuinely|quite|a bit|bit) afraid|=afraid (?:of|to|for)|"
        r"(?<!i'm )(?<!i am )(?<!im )afraid|=frighten\w*|=terrified|=petrified|=panic\w*|=nervous|"
        r"=freaking out|=(?:hands are |i'?m |am )shaking|=can'?t think straight|=beside (?:her|him|my|them)sel(?:f|ves)|"
        r"=dread\w*(?! to think)|=stressed|=on edge|=losing sleep|=can'?t sleep|=what am i (?:meant|supposed) to do|"
        r"=(?:don'?t|do not) know what to do|stress\w*|concern(?:ed|ing)|uneasy|what if|alarm(?:ed|ing)|desperate",
    ),
    "sadness": (
        r"=heartbroken|=heart ?broken|=breaks my heart|=devastat\w*|=grieving|=(?:so|really|very|just) sad|"
        r"=in tears|=crying|=feel(?:ing)? (?:really |pretty |so |very )?(?:low|down|miserable|hopeless)|=depress\w*|"
        r"=miserable|=can (?:barely|hardly) face|=still (?:quite |so )?raw|=lonely|=distraught|=so tired of everything|"
        r"sad(?:ness|dened)?|upset|unhappy|grie\w*|tearful|gutted|sorrow\w*|lost my|passed away|miss (?:him|her|them)|"
        r"broken",
    ),
    "gratitude": (
        r"=thank(?:s| you(?: (?:so|very) much)?|ful)?(?!-)|=thanx|=thx|=cheers(?: mate| for (?:that|your help|sorting))?|"
        r"=grateful|=gratitude|=appreciat\w*|=relie(?:f|ved)|=lifesaver|=life saver|=you'?re a (?:star|legend|angel|gem)|"
        r"=you'?ve been (?:great|brilliant|amazing|so helpful|wonderful|really helpful|a (?:massive|great|huge) help)|"
        r"=(?:massive|great|huge) help|=(?:so|very|really) helpful",
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
    explicit: bool
    checked: bool = False  # ambiguous: the model must agree ("?")
    safety: bool = False  # a disclosure of danger to life: fires whatever the model says ("+")
    innocent: bool = False  # an everyday phrase that only sounds like the cue ("-")


def _compile() -> tuple[Rule, ...]:
    rules = []
    for cue, patterns in PATTERNS.items():
        for pattern in patterns:
            marks = pattern[:len(pattern) - len(pattern.lstrip("!?+-"))]
            body = pattern[len(marks):]
            # A pattern may be an alternation whose branches carry their own "=" mark: split them apart.
            branches = split_top_level(body) if "=" in body else [body]
            for branch in branches:
                explicit = branch.startswith("=") or cue in CONVERSATION or cue == "_sarcasm"
                # The group keeps the word boundaries around every alternative, not only the first and last
                # ("fca" must not match inside "briefcase", nor "sue you" inside "issue you").
                regex = re.compile(rf"(?<![\w'])(?:{branch.removeprefix('=')})(?![\w'])", re.IGNORECASE)
                rules.append(Rule(cue, regex, "!" not in marks, explicit, "?" in marks, "+" in marks,
                                  "-" in marks))
    return tuple(rules)


CONVERSATION = frozenset({"repeat_contact", "escalation_request", "churn_risk", "urgency", "abuse", "crisis"})
# An opening "Great," is sarcastic only beside a sign that something went wrong: another cue that sours the
# text, or words of a failure ("Great, another delay", "Perfect. Still nothing.").
SOURING_CUES = frozenset({"frustration", "disappointment", "repeat_contact", "churn_risk", "abuse"})
SOURED = re.compile(
    r"(?<![\w'])(?:again|another|yet|still|delay\w*|cancell?ed|broken|broke|wrong|lost|late|wait\w*|hours|"
    r"nothing|never|nobody|no one|overcharged|charged|crash\w*|fail\w*|not working|doesn'?t work|stopped working|"
    r"on hold|ignored|ruin\w*|useless|locked out|no (?:reply|response|signal|service|internet|heating|power|water|"
    r"money|refund|update|one|help))(?![\w'])", re.IGNORECASE)


def split_top_level(pattern: str) -> list[str]:
    """Split a regular expression on the | that are not inside parentheses or brackets."""
    parts, depth, current, escaped, in_class = [], 0, [], False, False
    for ch in pattern:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif not in_class and ch == "(":
            depth += 1
        elif not in_class and ch == ")":
            depth -= 1
        elif not in_class and ch == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


RULES = _compile()


class Clauses:
    """The clause breaks and words of one text, found once, so that each negation check is a bisect and a look
    at the four words before a match instead of a rescan from the start of the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.breaks = [brk.end() for brk in CLAUSE_BREAK.finditer(text)]
        words = [(w.start(), w.end()) for w in WORD.finditer(text)]
        self.word_starts = [s for s, _ in words]
        self.word_ends = [e for _, e in words]

    def negated(self, start: int) -> bool:
        """Whether a negator governs the words starting at `start` (same clause, at most four words before)."""
        at = bisect_right(self.breaks, start)
        clause_start = self.breaks[at - 1] if at else 0
        first = bisect_right(self.word_ends, clause_start)  # the first word that ends inside the clause
        last = bisect_left(self.word_starts, start)  # one past the last word that starts before `start`
        for i in range(last - 1, max(first, last - NEGATION_REACH) - 1, -1):
            # A word cut by the clause start or by `start` counts by its part inside, as a rescan of the
            # clause alone would read it.
            word = self.text[max(self.word_starts[i], clause_start):min(self.word_ends[i], start)].lower()
            if word in NEGATORS or word.endswith("n't"):
                return True
            if word in SUBJECTS:
                return False
        return False


def is_negated(text: str, start: int) -> bool:
    """Whether a negator governs the words starting at `start` (same clause, at most four words before)."""
    return Clauses(text).negated(start)


@dataclass(frozen=True)
class Evidence:
    """What the phrase detectors found in one text: spans per cue, the cues stated explicitly, the cues whose
    explicit words were negated ("I'm not worried"), and whether praise was sarcastic."""

    spans: dict[str, list[Span]]
    explicit: frozenset[str]
    negated: frozenset[str] = frozenset()
    sarcasm: bool = False
    checked: frozenset[str] = frozenset()  # conversational cues found only by ambiguous phrases: the model decides
    safety: frozenset[str] = frozenset()  # cues stated as a danger to life: never overruled
    innocent: frozenset[str] = frozenset()  # cues that everyday phrases only seem to state: the model may not add them


def scan(text: str, normal: Normalised | None = None) -> Evidence:
    """Every pattern match per cue, negated matches dropped, overlaps merged; sarcasm folded into frustration.
    The rules read the normal form of the text (`normal`, when the caller has it already); the spans point
    into `text`. Where the text holds invisible characters, both readings count, dropped ("ki\u200bll") and
    as spaces ("kill\u200bmyself"), except that a match negated in one reading is negated in both
    ("it's\u200bnot urgent")."""
    normal = normal or normalise(text)
    readings = [normal, normalise(text, invisible_as_space=True)] if normal.invisible else [normal]
    matches = [match for reading in readings for match in _matches(reading)]
    cancelled: dict[int, list[Span]] = {}
    if len(readings) > 1:
        for number, span, was_negated in matches:
            if was_negated:
                cancelled.setdefault(number, []).append(span)
        cancelled = {number: merge_spans(spans) for number, spans in cancelled.items()}
    found: dict[str, list[Span]] = {}
    explicit: set[str] = set()
    negated: set[str] = set()
    safety: set[str] = set()
    innocent: set[str] = set()
    for number, span, was_negated in matches:
        rule = RULES[number]
        if rule.innocent:
            innocent.add(rule.cue)
            continue
        if was_negated or (number in cancelled and overlaps(cancelled[number], span)):
            if rule.explicit and not rule.checked:
                negated.add(rule.cue)
            continue
        cue = "_sarcasm?" if rule.cue == "_sarcasm" and rule.checked else rule.cue
        found.setdefault(cue, []).append(span)
        if rule.explicit and not rule.checked:
            explicit.add(cue)
        if rule.safety:
            safety.add(cue)
    opener = found.pop("_sarcasm?", None)
    if opener and (found.keys() & SOURING_CUES or SOURED.search(normal.text)):
        found["_sarcasm"] = found.get("_sarcasm", []) + opener
    sarcasm = found.pop("_sarcasm", None)
    if sarcasm:
        found["frustration"] = found.get("frustration", []) + sarcasm
        explicit.add("frustration")
        found.pop("gratitude", None)
        explicit.discard("gratitude")
    explicit.discard("_sarcasm")
    checked = frozenset(cue for cue in found if cue in CONVERSATION and cue not in explicit)
    return Evidence({cue: merge_spans(spans) for cue, spans in found.items()}, frozenset(explicit),
                    frozenset(negated - set(found)), bool(sarcasm), checked - innocent, frozenset(safety),
                    frozenset(innocent - explicit))


def _matches(reading: Normalised) -> list[tuple[int, Span, bool]]:
    """(rule number, span in the original text, negated) for every match of every rule in one reading."""
    text, clauses, out = reading.text, None, []
    for number, rule in enumerate(RULES):
        for match in rule.regex.finditer(text):
            if match.end() == match.start():
                continue
            was_negated = False
            if rule.negatable:
                clauses = clauses or Clauses(text)
                was_negated = clauses.negated(match.start())
            out.append((number, reading.span(match.start(), match.end()), was_negated))
    return out


def overlaps(spans: list[Span], span: Span) -> bool:
    """Whether span overlaps any of the sorted, disjoint spans."""
    at = bisect_left(spans, (span[1],))  # the first that starts at or after span's end
    return at > 0 and spans[at - 1][1] > span[0]


def find_spans(text: str) -> dict[str, list[Span]]:
    """Spans per cue (see scan)."""
    return scan(text).spans


def merge_spans(spans: list[Span], gap: int = 0) -> list[Span]:
    """Sort spans and merge those that overlap or touch, or stand at most `gap` characters apart."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]
