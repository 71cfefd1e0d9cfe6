"""The word lists that :mod:`minicosy.data.sentences` combines: data, not logic.

Each list is one category; the templates in ``sentences`` only combine categories that make
sense together (you eat foods, wear clothes, visit places), which keeps sentences plausible.
Every word is in the CMU pronouncing dictionary that pocketsphinx (the WER judge) ships, so the
judge can recognise it (``tests/test_sentences.py`` checks ≥ 98% of the vocabulary). The last
three tables hold English morphology: irregular verb forms, consonant doubling, irregular plurals.
"""

NAMES_F = """Anna Mary Sarah Emma Lucy Kate Alice Grace Laura Helen Julia Rose Ruth Amy Jane Linda
Susan Karen Nancy Lisa Emily Olivia Sophie Chloe Hannah Ella Mia Zoe Ava Lily Ellen Nora Clara
Maria Rachel Diana Fiona Irene Joan Judy Sally Wendy Paula Rita Vera Tina Molly Holly Megan
Alice Bella Carol Daisy Eva Gina Hazel Iris Jenny Kelly Leah Maggie Nina Pam Rosa Stella Tara
Ursula Violet Agnes Beth Cathy Dora Edith Flora Gloria Heidi Ivy Janet Lena Mona Nell Sylvia""".split()
NAMES_M = """Tom John Peter Paul David James Mark Sam Jack Henry George Daniel Michael Robert
Steven Brian Kevin Simon Adam Oliver Lucas Ben Max Leo Noah Ethan Ryan Eric Frank Carl Alan
Victor Philip Martin Andrew Nick Tony Larry Oscar Walter Harry Fred Edward Luke Owen Dennis
Albert Bill Charlie Dan Felix Gary Hugo Ian Jake Keith Lewis Matt Neil Pete Ralph Scott Ted
Vincent Wayne Arthur Bruce Colin Dylan Gordon Howard Jerry Kenny Mike Roger Stan Tim Joe Ray""".split()

# singular nouns; irregular plurals are in _PLURAL
PEOPLE = """friend teacher doctor nurse neighbor brother sister mother father uncle aunt cousin
grandmother grandfather boss driver farmer baker student child baby girl boy woman man
manager waiter singer painter pilot dentist lawyer cook guest customer visitor player
coach officer worker artist writer engineer scientist librarian gardener plumber
granddaughter grandson nephew niece husband wife classmate roommate partner captain soldier
sailor fisherman mechanic carpenter banker secretary
student pupil author actor actress dancer musician photographer reporter chef butcher
barber tailor cleaner firefighter""".split()
JOBS = """teacher doctor nurse farmer baker waiter singer painter pilot dentist lawyer cook
driver engineer scientist librarian gardener plumber writer artist manager nurse""".split()
ANIMALS = """dog cat horse cow sheep pig chicken duck goat rabbit mouse bird fish frog bear
lion tiger monkey elephant fox wolf deer owl snake turtle puppy kitten goose donkey
squirrel hamster parrot pony camel zebra giraffe kangaroo whale dolphin shark bee butterfly
spider ant beetle crab penguin swan eagle crow pigeon lamb calf bull hen rooster panda
gorilla lizard bat""".split()
FOODS_COUNT = """apple banana orange lemon pear peach plum grape cherry strawberry tomato potato
onion carrot egg sandwich cookie cake pie muffin pizza burger sausage biscuit pancake
cucumber pepper mushroom melon pineapple sweet avocado apricot coconut lime peanut walnut
cracker doughnut bagel pretzel waffle taco dumpling omelet cupcake lollipop bean pea olive
radish pumpkin cabbage pickle meatball""".split()
FOODS_MASS = """bread rice soup cheese butter chicken fish pasta salad milk coffee tea juice water
jam honey sugar salt chocolate cereal yogurt porridge lemonade beef pork toast popcorn soda
cream broccoli spinach garlic ham bacon tuna flour oatmeal pudding custard gravy
ketchup mustard vinegar oil syrup candy corn noodles beans stew curry
lettuce""".split() + ["ice cream", "peanut butter"]
DRINKS = "milk coffee tea juice water lemonade".split()
MEALS = "breakfast lunch dinner supper".split()
THINGS = """book key phone bag box chair table lamp cup plate bowl spoon fork knife glass
bottle pen pencil letter card ticket map clock watch radio camera umbrella basket bucket
blanket pillow towel mirror window door candle ball kite toy picture photo present parcel
ladder hammer brush broom wallet purse newspaper magazine notebook computer laptop guitar
piano drum bicycle wheel rope bell shelf drawer jar kettle pan pot fan heater fridge
stapler ruler eraser backpack calculator crayon marker envelope stamp sticker screwdriver
wrench saw drill shovel rake hose sofa desk stool bench armchair carpet rug curtain cupboard
wardrobe vase teapot tray napkin sponge soap toothbrush comb helmet tent suitcase flashlight
battery charger keyboard printer calendar diary poster painting statue trophy medal ring
necklace bracelet coin button needle puzzle doll balloon whistle flag sign fence gate
mailbox envelope violin ribbon tablet screen speaker remote microphone""".split()
CLOTHES = """coat jacket shirt dress skirt sweater scarf hat cap sock shoe boot glove belt
tie uniform apron vest raincoat sandal slipper blouse mitten gown costume suit""".split()
VEHICLES = "bus train car taxi boat plane truck bike ferry van".split()
# places you go *to the* ...
PLACES = """park beach market library station airport museum school office hospital bank
kitchen garden garage bakery shop river lake forest hill village farm zoo cinema theater
church bridge harbor restaurant cafe hotel post office playground stadium pool gym
supermarket pharmacy castle island mountain valley field corner factory university
college temple tower palace gallery laundry salon cave desert waterfall meadow orchard
bay coast shore jungle pond stream canal square mall aquarium circus fair bookstore
stadium barn cottage studio clinic prison embassy dock pier cathedral""".split()
PLACES = [p for p in PLACES if p not in ("post", "office")] + ["post office", "office"]
ROOMS = "kitchen bedroom bathroom garden garage hall attic basement living room".split()
ROOMS = [r for r in ROOMS if r not in ("living", "room")] + ["living room"]
CITIES = """London Paris Boston Chicago Denver Dallas Seattle Rome Madrid Berlin Tokyo Sydney
Toronto Dublin Vienna Lisbon Athens Cairo Moscow Oslo Prague Miami Houston Phoenix Atlanta
Chicago Montreal Vancouver Venice Florence Milan Amsterdam Brussels Geneva Stockholm""".split()
BODY = """knee elbow shoulder ankle wrist finger thumb toe tooth stomach throat neck back nose
ear eye foot hand arm leg head""".split()
TREES = "oak pine maple willow apple cherry palm birch".split()
FLOWERS = "daisy tulip lily sunflower rose violet".split()
SKY = "rainbow moon sunset sunrise clouds stars storm lightning".split()
SPORTS = "football tennis chess golf basketball cards volleyball hockey baseball".split()
INSTRUMENTS = "piano guitar violin drums flute trumpet".split()
SUBJECTS = "history music science art geography math English French".split()
COLORS = "red blue green yellow black white brown pink purple orange gray silver golden".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = """January February March April May June July August September October November
December""".split()
SEASONS = "spring summer autumn winter".split()
WEATHER = "sunny rainy cloudy windy foggy cold warm hot freezing stormy".split()
FEELINGS = """happy sad tired hungry thirsty angry nervous excited bored worried proud
surprised sleepy lonely calm busy glad sorry
cheerful grateful relaxed curious confused scared upset thrilled annoyed hopeful""".split()
ADJ_THING = """old new small big heavy light broken clean dirty cheap expensive empty full
shiny round square long short soft hard wooden plastic tiny huge strange useful lovely
beautiful ugly simple fancy wonderful terrible rusty dusty
muddy sticky fluffy smooth rough narrow wide shiny spare favorite precious ancient modern
cute tidy messy colorful striped spotted leather metal glass paper""".split() + COLORS
ADJ_FOOD = """fresh warm sweet spicy cold hot delicious salty sour crunchy tasty soft ripe
homemade crispy juicy creamy bitter frozen cheap healthy greasy plain roasted
boiled fried baked chilled""".split()
ADJ_PERSON = """kind tall short young old friendly funny clever quiet polite brave shy busy
honest careful patient lucky gentle clever
cheerful generous lazy strong calm famous wise smart""".split()
ADJ_PLACE = """quiet busy crowded empty noisy beautiful dark peaceful small big clean famous
lovely cozy wonderful pleasant gorgeous enormous tiny narrow wide muddy
sunny shady charming ancient modern popular""".split()
ADV = """quickly slowly carefully quietly loudly happily gently early late together again
today cheerfully politely patiently proudly nervously suddenly finally
immediately""".split()
TIMES = """this morning|this afternoon|this evening|tonight|tomorrow|tomorrow morning|
yesterday|yesterday afternoon|last night|last week|next week|next month|on the weekend|
every day|every morning|every evening|after school|after work|before dinner|after lunch|
at noon|at midnight|in the morning|in the evening|later today|right now|soon""".replace(
    "\n", "").split("|")

TOO = "small big heavy old expensive long short bright loud".split()  # "... is too ___"
SPOTS = ["under the table", "in the garden", "by the door", "near the window", "on the grass"]

# verbs: base form → objects they take. Regular forms are derived; irregular ones are below.
VERB_FOOD = """eat cook buy order share taste bake cut wash heat pack finish bring want like
love need find prepare choose carry sell pick
boil fry roast grill peel slice chop mix stir serve freeze warm smell grab store weigh
share deliver""".split()
VERB_THING = """find carry clean open close fix move buy sell lose drop paint check hold keep
borrow lend wrap hide bring take need want use break return show send pack push pull
throw catch
repair polish decorate measure weigh count sort collect drag lift shake fill empty replace
unpack print sign fetch deliver order rent borrow wipe dust search""".split()
VERB_PERSON = """call meet visit help thank invite follow remember miss ask tell teach hug
greet wake find see hear watch phone join
recognize introduce interview trust forgive comfort encourage guide pay warn surprise
answer thank""".split()
VERB_ANIMAL = "feed watch walk wash chase find see hear draw photograph".split()
VERB_CLOTHES = "wear buy wash iron fold lose find try borrow sew".split()
VERB_PLACE = "visit clean leave paint explore photograph".split()
VERB_INTRANS = """sleep laugh smile cry sing dance swim run walk wait rest work study read
write shout whisper travel cook listen play relax jump climb shop clap
cough sneeze yawn whistle snore knit sew paint draw hike camp fish skate ski surf jog
stretch practice exercise bake shiver nod wave giggle hum""".split()
VERB_MOTION = "walk drive run ride hurry go come travel cycle fly return".split()

# base → (past, past participle)
_IRREGULAR = {
    "eat": ("ate", "eaten"), "buy": ("bought", "bought"), "cut": ("cut", "cut"),
    "bring": ("brought", "brought"), "find": ("found", "found"), "choose": ("chose", "chosen"),
    "sell": ("sold", "sold"), "lose": ("lost", "lost"), "hold": ("held", "held"),
    "keep": ("kept", "kept"), "lend": ("lent", "lent"), "hide": ("hid", "hidden"),
    "take": ("took", "taken"), "break": ("broke", "broken"), "show": ("showed", "shown"),
    "send": ("sent", "sent"), "throw": ("threw", "thrown"), "catch": ("caught", "caught"),
    "meet": ("met", "met"), "tell": ("told", "told"), "teach": ("taught", "taught"),
    "see": ("saw", "seen"), "hear": ("heard", "heard"), "draw": ("drew", "drawn"),
    "wear": ("wore", "worn"), "leave": ("left", "left"), "sleep": ("slept", "slept"),
    "sing": ("sang", "sung"), "swim": ("swam", "swum"), "run": ("ran", "run"),
    "read": ("read", "read"), "write": ("wrote", "written"), "drive": ("drove", "driven"),
    "ride": ("rode", "ridden"), "go": ("went", "gone"), "come": ("came", "come"),
    "fly": ("flew", "flown"), "make": ("made", "made"), "put": ("put", "put"),
    "get": ("got", "got"), "give": ("gave", "given"), "forget": ("forgot", "forgotten"),
    "freeze": ("froze", "frozen"), "shake": ("shook", "shaken"), "forgive": ("forgave", "forgiven"),
    "feed": ("fed", "fed"), "wake": ("woke", "woken"), "pay": ("paid", "paid"),
    "sit": ("sat", "sat"), "build": ("built", "built"), "sweep": ("swept", "swept"),
}
_DOUBLE = {"cut", "stop", "plan", "drop", "hug", "jog", "shop", "swim", "run", "clap",
           "get", "put", "forget", "begin", "wrap", "chop", "stir", "skip", "knit", "drag",
           "grab", "nod", "hum", "sit"}
_PLURAL = {"child": "children", "woman": "women", "man": "men", "mouse": "mice",
           "sheep": "sheep", "fish": "fish", "deer": "deer", "goose": "geese",
           "knife": "knives", "shelf": "shelves", "wolf": "wolves", "potato": "potatoes",
           "tomato": "tomatoes", "person": "people", "scarf": "scarves",
           "tooth": "teeth", "calf": "calves", "fisherman": "fishermen", "foot": "feet",
           "wife": "wives",
           "noodles": "noodles", "beans": "beans", "clouds": "clouds", "stars": "stars"}
