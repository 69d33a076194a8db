package uselite

// CalibrationSentences are the inputs static int8 activations are calibrated on (each Linear's
// input and output interval, see backend.Calibration): everyday English of varied length and
// topic, none of them in the test sets, so a test measures the calibration on text it did not
// see.
var CalibrationSentences = []string{
	"Good morning, how did you sleep?",
	"The meeting has been moved to Thursday afternoon.",
	"Can you recommend a good book about history?",
	"Heavy rain is expected across the north tonight.",
	"I need to buy milk, bread and a dozen eggs.",
	"The new phone has a larger screen and a better camera.",
	"Our flight was delayed by three hours because of fog.",
	"What time does the museum open on Sundays?",
	"He fixed the bicycle chain with an old screwdriver.",
	"The committee approved the budget after a long debate.",
	"Turn left at the second traffic light and keep going.",
	"My grandmother grows tomatoes, beans and sunflowers.",
	"Is there a pharmacy open near the hospital?",
	"The children built a sandcastle before the tide came in.",
	"Interest rates rose for the third month in a row.",
	"Thanks a lot, that was really helpful!",
	"Why is the sky blue during the day and red at sunset?",
	"The software update fixed the login problem on older laptops.",
	"She painted the kitchen walls a pale shade of green.",
	"Please send me the report by the end of the week.",
	"A small earthquake shook the coastal town last night.",
	"Do you prefer tea or coffee in the morning?",
	"The orchestra rehearsed the symphony for six weeks.",
	"I can't find my keys anywhere, have you seen them?",
}
