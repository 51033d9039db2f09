/* tests/test_card.c: model cards in Markdown and HTML: every section and
 * value present, text from the input escaped, the inline SVG balanced and
 * free of NaN/Inf, regression cards, empty inputs, many classes, and
 * writes that fail without leaving a file behind. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/card.h"
#include "test.h"

#define SHA_MODEL "4f1c9a0be2d37c55a1e8f0b9d6c4a3e2f1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6"
#define SHA_DATA "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define LONG_CLASS "Sandals, strappy summer edition"

static char tmp_dir[64];

static void make_tmp_dir(void)
{
    if (tmp_dir[0]) return;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/kiln_test_card.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Whether word appears on its own (not inside a longer word), ignoring case:
 * how a NaN or Inf printed by printf would show. */
static bool has_word(const char *hay, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, word, n) != 0) continue;
        bool before = p > hay && isalnum((unsigned char)p[-1]);
        bool after = isalnum((unsigned char)p[n]);
        if (!before && !after) return true;
    }
    return false;
}

static bool contains_ci(const char *hay, const char *needle)
{
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, strlen(needle)) == 0) return true;
    return false;
}

static bool no_nonfinite_text(const char *s)
{
    return !has_word(s, "nan") && !has_word(s, "inf") && !has_word(s, "infinity");
}

/* needles appear in s in this order. */
static bool in_order(const char *s, const char *const *needles, int n)
{
    const char *at = s;
    for (int i = 0; i < n; i++) {
        const char *p = strstr(at, needles[i]);
        if (!p) {
            fprintf(stderr, "missing or out of order: %s\n", needles[i]);
            return false;
        }
        at = p + strlen(needles[i]);
    }
    return true;
}

/* Every <svg ...> has its </svg>, never nested, and the same holds for the
 * HTML elements the card opens. */
static bool balanced(const char *s)
{
    int depth = 0;
    for (const char *p = s; (p = strstr(p, "svg")); p++) {
        if (p >= s + 1 && p[-1] == '<' && (p[3] == ' ' || p[3] == '>')) depth++;
        if (p >= s + 2 && p[-2] == '<' && p[-1] == '/') depth--;
        if (depth < 0 || depth > 1) return false;
    }
    if (depth != 0) return false;
    static const char *const pairs[][2] = {
        {"<table>", "</table>"}, {"<tr>", "</tr>"}, {"<figure>", "</figure>"},
        {"<details>", "</details>"}, {"<text", "</text>"}, {"<title>", "</title>"},
        {"<h2>", "</h2>"}, {"<h3>", "</h3>"}, {"<pre>", "</pre>"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (count_of(s, pairs[i][0]) != count_of(s, pairs[i][1])) {
            fprintf(stderr, "%s x%d but %s x%d\n", pairs[i][0], count_of(s, pairs[i][0]),
                    pairs[i][1], count_of(s, pairs[i][1]));
            return false;
        }
    return true;
}

/* --- a full classification card, built by hand ---------------------------------------- */

struct fixture {
    struct kiln_card_config card;
    struct kiln_dataset_stats stats;
    struct kiln_feature_stats train_features[12], test_features[12];
    int64_t train_counts[3], test_counts[3];
    char *classes[3];
    int64_t confusion[9];
    double precision[3], recall[3], f1[3];
    struct kiln_metrics metrics;
    struct kiln_card_epoch epochs[3];
    struct kiln_card_lineage lineage[4];
    struct kiln_card_input in;
};

static char class_tshirt[] = "T-shirt/top";
static char class_shirt[] = "Shirt \"casual\" & 'formal'";
static char class_long[] = LONG_CLASS;

static const char config_yaml[] =
    "model:\n  input: [28, 28]\n  layers:\n    - type: flatten\n    - {type: dense, units: 3}\n"
    "train:\n  epochs: 3\n";

static void fill_feature(struct kiln_feature_stats *f, int i, int64_t count)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "pixel%d", i);
    f->count = count;
    f->mean = 0.25 + 0.01 * i;
    f->std = 0.125;
    f->min = 0;
    f->max = i == 11 ? 2.5 : 1; /* the overall max comes from a feature past the table */
    for (int q = 0; q < KILN_STATS_QUANTILES; q++) f->quantiles[q] = 0.2 * q;
}

static void fixture_init(struct fixture *x)
{
    memset(x, 0, sizeof *x);
    x->card.description = "A three-class MLP for the tests.";
    x->card.intended_use = "Teaching and benchmarking.\nNot for decisions about people.\n";
    x->card.limitations = "Fails on <script>alert('x')</script> & other \"inputs\".";
    x->card.ethical_considerations = NULL; /* not stated */
    x->card.authors = "Ann Example";
    x->card.license = "MIT";

    x->stats.n_splits = 2;
    struct kiln_split_stats *tr = &x->stats.splits[0], *te = &x->stats.splits[1];
    tr->split = KILN_SPLIT_TRAIN;
    tr->rows = 60000;
    tr->n_features = 12;
    tr->features = x->train_features;
    tr->n_classes = 3;
    tr->class_counts = x->train_counts;
    te->split = KILN_SPLIT_TEST;
    te->rows = 10000;
    te->n_features = 12;
    te->features = x->test_features;
    te->n_classes = 3;
    te->class_counts = x->test_counts;
    for (int i = 0; i < 12; i++) {
        fill_feature(&x->train_features[i], i, 60000);
        fill_feature(&x->test_features[i], i, 10000);
    }
    x->train_counts[0] = 20000, x->train_counts[1] = 30000, x->train_counts[2] = 10000;
    x->test_counts[0] = 4000, x->test_counts[1] = 4000, x->test_counts[2] = 2000;

    x->classes[0] = class_tshirt;
    x->classes[1] = class_shirt;
    x->classes[2] = class_long;
    static const int64_t cm[9] = {3500, 400, 100, 600, 3300, 100, 0, 50, 1950};
    memcpy(x->confusion, cm, sizeof cm);
    for (int c = 0; c < 3; c++) {
        int64_t row = 0, col = 0;
        for (int k = 0; k < 3; k++) row += cm[c * 3 + k], col += cm[k * 3 + c];
        x->precision[c] = (double)cm[c * 4] / (double)col;
        x->recall[c] = (double)cm[c * 4] / (double)row;
        x->f1[c] = 2 * x->precision[c] * x->recall[c] / (x->precision[c] + x->recall[c]);
    }
    x->metrics.n = 10000;
    x->metrics.loss = 0.3321;
    x->metrics.n_classes = 3;
    x->metrics.accuracy = 0.875;
    x->metrics.confusion = x->confusion;
    x->metrics.precision = x->precision;
    x->metrics.recall = x->recall;
    x->metrics.f1 = x->f1;
    x->metrics.macro_f1 = (x->f1[0] + x->f1[1] + x->f1[2]) / 3;
    x->metrics.mse = x->metrics.mae = x->metrics.r2 = NAN;

    x->epochs[0] = (struct kiln_card_epoch){1, 0.6125, 0.4875, NAN}; /* accuracy missing */
    x->epochs[1] = (struct kiln_card_epoch){2, 0.4250, NAN, 0.8625};  /* val loss missing */
    x->epochs[2] = (struct kiln_card_epoch){3, 0.3750, 0.3625, 0.8750};

    x->lineage[0] = (struct kiln_card_lineage){"dataset", "fashion-mnist v2", SHA_DATA,
                                               "normalize; parent fashion-mnist v1"};
    x->lineage[1] = (struct kiln_card_lineage){"run", "run:42", "", "adam, lr 0.001, 3 epochs"};
    x->lineage[2] = (struct kiln_card_lineage){"checkpoint", "run:42/final.h5",
                                               "c0ffee00c0ffee00c0ffee00c0ffee00", ""};
    x->lineage[3] = (struct kiln_card_lineage){"model", "classifier@3", SHA_MODEL, "production"};

    struct kiln_card_input *in = &x->in;
    in->model_name = "classifier";
    in->model_version = 3;
    in->model_sha256 = SHA_MODEL;
    in->description = "Registry description of the classifier.";
    in->created = "2026-11-26T21:28:19Z";
    in->card = &x->card;
    in->config_yaml = config_yaml;
    in->dataset_name = "fashion-mnist";
    in->dataset_sha256 = SHA_DATA;
    in->stats = &x->stats;
    in->n_classes = 3;
    in->classes = x->classes;
    in->metrics = &x->metrics;
    in->metrics_split = "test";
    in->n_epochs = 3;
    in->epochs = x->epochs;
    in->n_lineage = 4;
    in->lineage = x->lineage;
}

/* Writes in as fmt to tmp_dir/name and returns the text (caller frees). */
static char *write_and_read(const struct kiln_card_input *in, enum kiln_card_format fmt,
                            const char *name)
{
    char path[256];
    make_tmp_dir();
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    enum kiln_status st = kiln_card_write(in, fmt, path);
    if (st != KILN_OK) {
        fprintf(stderr, "kiln_card_write(%s): %s\n", path, kiln_last_error());
        return NULL;
    }
    return read_all(path);
}

TEST(markdown_card)
{
    struct fixture x;
    fixture_init(&x);
    char *md = write_and_read(&x.in, KILN_CARD_MARKDOWN, "card.md");
    ASSERT(md != NULL);
    static const char *const sections[] = {
        "# Model card: classifier v3\n", "## Model details", "## Intended use",
        "## Limitations", "## Ethical considerations", "## Training data", "## Training\n",
        "## Evaluation", "## Lineage",
    };
    ASSERT(in_order(md, sections, 9));
    /* Details and the card's own text. */
    ASSERT(strstr(md, "| SHA-256 | `" SHA_MODEL "` |") != NULL);
    ASSERT(strstr(md, "| Created | 2026-11-26T21:28:19Z |") != NULL);
    ASSERT(strstr(md, "| Authors | Ann Example |") != NULL);
    ASSERT(strstr(md, "| License | MIT |") != NULL);
    ASSERT(strstr(md, "Registry description of the classifier.") != NULL);
    ASSERT(strstr(md, "A three-class MLP for the tests.") != NULL);
    ASSERT(strstr(md, "Teaching and benchmarking.\nNot for decisions about people.\n\n") != NULL);
    ASSERT(strstr(md, "## Ethical considerations\n\n*Not stated in the training config.*") != NULL);
    /* No raw HTML reaches a Markdown renderer. */
    ASSERT(strstr(md, "Fails on \\<script>alert('x')\\</script> \\& other \"inputs\".") != NULL);
    ASSERT(strstr(md, " <script") == NULL);
    /* Training data: hash, splits, class balance, features and the overall line. */
    ASSERT(strstr(md, "Dataset **fashion-mnist**, content hash `" SHA_DATA "`.") != NULL);
    ASSERT(strstr(md, "| train | 60000 | 12 |") != NULL);
    ASSERT(strstr(md, "| test | 10000 | 12 |") != NULL);
    ASSERT(strstr(md, "| class | train | test |") != NULL);
    ASSERT(strstr(md, "| T-shirt/top | 20000 (33.3%) | 4000 (40.0%) |") != NULL);
    ASSERT(strstr(md, "| pixel0 | 60000 | 0.25 | 0.125 | 0 | 0.4 | 1 |") != NULL);
    ASSERT(strstr(md, "| pixel9 |") != NULL);
    ASSERT(strstr(md, "| pixel10 |") == NULL); /* only the first 10 in the table */
    ASSERT(strstr(md, "All 12 features: min 0, max 2.5, mean 0.305.") != NULL);
    /* Training: the config and the epochs, a dash where a value is missing. */
    ASSERT(strstr(md, "```yaml\nmodel:\n  input: [28, 28]\n") != NULL);
    ASSERT(strstr(md, "train:\n  epochs: 3\n```\n") != NULL);
    ASSERT(strstr(md, "| epoch | train loss | val loss | val accuracy |") != NULL);
    ASSERT(strstr(md, "| 1 | 0.6125 | 0.4875 | \xe2\x80\x94 |") != NULL);
    ASSERT(strstr(md, "| 2 | 0.4250 | \xe2\x80\x94 | 0.8625 |") != NULL);
    ASSERT(strstr(md, "| 3 | 0.3750 | 0.3625 | 0.8750 |") != NULL);
    /* Evaluation. */
    ASSERT(strstr(md, "On the **test** split, 10000 rows.") != NULL);
    ASSERT(strstr(md, "| loss | 0.3321 |") != NULL);
    ASSERT(strstr(md, "| accuracy | 0.8750 |") != NULL);
    char want[128];
    snprintf(want, sizeof want, "| macro F1 | %.4f |", x.metrics.macro_f1);
    ASSERT(strstr(md, want) != NULL);
    snprintf(want, sizeof want, "| T-shirt/top | %.3f | %.3f | %.3f | 4000 |", x.precision[0],
             x.recall[0], x.f1[0]);
    ASSERT(strstr(md, want) != NULL);
    ASSERT(strstr(md, "| " LONG_CLASS " | 0 | 50 | 1950 |") != NULL);
    ASSERT(strstr(md, "| Shirt \"casual\" \\& 'formal' | 600 | 3300 | 100 |") != NULL);
    ASSERT(strstr(md, "MSE") == NULL);
    /* Lineage, in order. */
    static const char *const chain[] = {
        "| kind | label | hash | detail |",
        "| dataset | fashion-mnist v2 | `" SHA_DATA "` | normalize; parent fashion-mnist v1 |",
        "| run | run:42 | \xe2\x80\x94 | adam, lr 0.001, 3 epochs |",
        "| checkpoint | run:42/final.h5 | `c0ffee00c0ffee00c0ffee00c0ffee00` | \xe2\x80\x94 |",
        "| model | classifier@3 | `" SHA_MODEL "` | production |",
    };
    ASSERT(in_order(md, chain, 5));
    ASSERT(no_nonfinite_text(md));
    ASSERT(strstr(md, "<svg") == NULL);
    free(md);
}

TEST(html_card)
{
    struct fixture x;
    fixture_init(&x);
    char *html = write_and_read(&x.in, KILN_CARD_HTML, "card.html");
    ASSERT(html != NULL);
    ASSERT(strncmp(html, "<!DOCTYPE html>\n<html lang=\"en\">", 32) == 0);
    ASSERT(strstr(html, "</body>\n</html>\n") != NULL);
    static const char *const sections[] = {
        "<h1>Model card: classifier v3</h1>", "<h2>Model details</h2>",
        "<h2>Intended use</h2>", "<h2>Limitations</h2>", "<h2>Ethical considerations</h2>",
        "<h2>Training data</h2>", "<h2>Training</h2>", "<h2>Evaluation</h2>",
        "<h2>Lineage</h2>",
    };
    ASSERT(in_order(html, sections, 9));
    /* Escaped, every time: no script survives, in any case. */
    ASSERT(!contains_ci(html, "<script"));
    ASSERT(strstr(html, "Fails on &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; other "
                        "&quot;inputs&quot;.") != NULL);
    ASSERT(strstr(html, "Shirt &quot;casual&quot; &amp; &#39;formal&#39;") != NULL);
    ASSERT(strstr(html, "Shirt \"casual") == NULL);
    ASSERT(strstr(html, "<p class=\"note\">Not stated in the training config.</p>") != NULL);
    ASSERT(strstr(html, "<code>" SHA_MODEL "</code>") != NULL);
    ASSERT(strstr(html, "<td class=\"num\">20000 (33.3%)</td>") != NULL);
    ASSERT(strstr(html, "<pre><code>model:\n  input: [28, 28]") != NULL);
    /* Self-contained: nothing fetched, nothing run. */
    ASSERT(strstr(html, "src=") == NULL);
    ASSERT(strstr(html, "href") == NULL);
    ASSERT(strstr(html, "@import") == NULL);
    ASSERT(strstr(html, "<link") == NULL);
    ASSERT(count_of(html, "url(") == count_of(html, "url(#"));
    ASSERT(count_of(html, "http") == count_of(html, "http://www.w3.org/2000/svg") +
                                         count_of(html, "http-equiv"));
    ASSERT(strstr(html, "default-src 'none'") != NULL);
    /* Three charts: loss, accuracy, confusion; balanced and finite. */
    ASSERT_EQ_INT(3, count_of(html, "<svg "));
    ASSERT(balanced(html));
    ASSERT(no_nonfinite_text(html));
    ASSERT(strstr(html, ">train loss</text>") != NULL);
    ASSERT(strstr(html, ">val loss</text>") != NULL);
    ASSERT(strstr(html, ">val accuracy</text>") != NULL);
    ASSERT(strstr(html, ">epoch</text>") != NULL);
    /* The confusion heatmap: counts in cells, the long name cut with its
     * full form in a tooltip, and the table for those who want numbers. */
    ASSERT(strstr(html, ">3500</text>") != NULL);
    ASSERT(strstr(html, ">1950</text>") != NULL);
    ASSERT(strstr(html, "fill=\"#8c959f\">0</text>") != NULL); /* an empty cell */
    ASSERT(strstr(html, "<title>" LONG_CLASS "</title>Sandals, strapp\xe2\x80\xa6</text>") !=
           NULL);
    ASSERT(strstr(html, "true class</text>") != NULL);
    ASSERT(strstr(html, "predicted class</text>") != NULL);
    ASSERT(strstr(html, "<details><summary>") != NULL);
    free(html);
}

/* --- other shapes of input ---------------------------------------------------------------- */

TEST(regression_card)
{
    struct fixture x;
    fixture_init(&x);
    struct kiln_feature_stats target;
    fill_feature(&target, 0, 60000);
    snprintf(target.name, sizeof target.name, "price");
    for (int i = 0; i < 2; i++) {
        x.stats.splits[i].n_classes = 0;
        x.stats.splits[i].class_counts = NULL;
        x.stats.splits[i].target_dim = 1;
        x.stats.splits[i].targets = &target;
    }
    struct kiln_metrics m = {.n = 500, .loss = 0.125, .mse = 0.125, .mae = 0.25, .r2 = 0.9375};
    x.in.metrics = &m;
    x.in.n_classes = 0;
    x.in.classes = NULL;
    for (int i = 0; i < 3; i++) x.epochs[i].val_accuracy = NAN;

    char *md = write_and_read(&x.in, KILN_CARD_MARKDOWN, "reg.md");
    ASSERT(md != NULL);
    ASSERT(strstr(md, "| MSE | 0.125 |") != NULL);
    ASSERT(strstr(md, "| MAE | 0.25 |") != NULL);
    ASSERT(strstr(md, "| R\xc2\xb2 | 0.9375 |") != NULL);
    ASSERT(strstr(md, "### Targets") != NULL);
    ASSERT(strstr(md, "| price | 60000 |") != NULL);
    ASSERT(strstr(md, "| accuracy |") == NULL);
    ASSERT(strstr(md, "Confusion") == NULL);
    ASSERT(strstr(md, "Class balance") == NULL);
    ASSERT(no_nonfinite_text(md));
    free(md);

    char *html = write_and_read(&x.in, KILN_CARD_HTML, "reg.html");
    ASSERT(html != NULL);
    ASSERT_EQ_INT(1, count_of(html, "<svg ")); /* the loss; no accuracy, no matrix */
    ASSERT(balanced(html));
    ASSERT(no_nonfinite_text(html));
    ASSERT(strstr(html, "<td>MSE</td><td class=\"num\">0.125</td>") != NULL);
    free(html);
}

TEST(empty_input)
{
    /* Nothing but a name: every section still there, saying what is missing. */
    struct kiln_card_input in = {.model_name = "bare", .model_version = 1};
    char *md = write_and_read(&in, KILN_CARD_MARKDOWN, "bare.md");
    ASSERT(md != NULL);
    ASSERT(strstr(md, "# Model card: bare v1") != NULL);
    ASSERT_EQ_INT(3, count_of(md, "*Not stated in the training config.*"));
    ASSERT(strstr(md, "| Authors | Not stated in the training config. |") != NULL);
    ASSERT(strstr(md, "No statistics recorded") != NULL);
    ASSERT(strstr(md, "No epochs recorded.") != NULL);
    ASSERT(strstr(md, "No evaluation recorded.") != NULL);
    ASSERT(strstr(md, "No lineage recorded.") != NULL);
    ASSERT(no_nonfinite_text(md));
    free(md);

    char *html = write_and_read(&in, KILN_CARD_HTML, "bare.html");
    ASSERT(html != NULL);
    ASSERT(strstr(html, "<svg") == NULL);
    ASSERT(strstr(html, "No epochs recorded.") != NULL);
    ASSERT(balanced(html));
    free(html);

    /* Zero epochs with a full card. */
    struct fixture x;
    fixture_init(&x);
    x.in.n_epochs = 0;
    x.in.epochs = NULL;
    html = write_and_read(&x.in, KILN_CARD_HTML, "noepochs.html");
    ASSERT(html != NULL);
    ASSERT_EQ_INT(1, count_of(html, "<svg ")); /* only the confusion matrix */
    ASSERT(strstr(html, "No epochs recorded.") != NULL);
    ASSERT(balanced(html));
    free(html);
}

TEST(one_epoch_and_nan_curves)
{
    struct fixture x;
    fixture_init(&x);
    x.in.n_epochs = 1;
    char *html = write_and_read(&x.in, KILN_CARD_HTML, "one.html");
    ASSERT(html != NULL);
    /* Loss chart with its lone points; epoch 1 has no accuracy, so no
     * accuracy chart. */
    ASSERT_EQ_INT(2, count_of(html, "<svg "));
    ASSERT_EQ_INT(2, count_of(html, "<circle"));
    ASSERT(balanced(html));
    ASSERT(no_nonfinite_text(html));
    free(html);

    /* Every loss NaN or infinite: no chart, a note, and still no NaN text. */
    for (int i = 0; i < 3; i++) {
        x.epochs[i].train_loss = NAN;
        x.epochs[i].val_loss = i ? -INFINITY : INFINITY;
    }
    x.in.n_epochs = 3;
    x.metrics.loss = NAN;
    html = write_and_read(&x.in, KILN_CARD_HTML, "nan.html");
    ASSERT(html != NULL);
    ASSERT(strstr(html, "No loss to chart") != NULL);
    ASSERT_EQ_INT(2, count_of(html, "<svg ")); /* accuracy and confusion */
    ASSERT(no_nonfinite_text(html));
    free(html);

    /* Values doubles cannot chart (a span past DBL_MAX, epochs past 2^53):
     * no chart, no hang, no NaN in the file. */
    for (int i = 0; i < 3; i++) {
        x.epochs[i].epoch = (int64_t)1 << 60 | i;
        x.epochs[i].train_loss = i ? -1e308 : 1e308;
        x.epochs[i].val_loss = NAN;
    }
    html = write_and_read(&x.in, KILN_CARD_HTML, "nan.html");
    ASSERT(html != NULL);
    ASSERT(strstr(html, "No loss to chart") != NULL);
    ASSERT(balanced(html));
    ASSERT(no_nonfinite_text(html));
    free(html);
}

TEST(many_classes)
{
    enum { N = 120 };
    struct fixture x;
    fixture_init(&x);
    static char names[N][80];
    static char *classes[N];
    static int64_t confusion[N * N];
    static double prf[3][N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "category number %d with a long name <%d>", i, i);
        classes[i] = names[i];
        for (int j = 0; j < N; j++) confusion[i * N + j] = i == j ? 90 + i : (i + j) % 7 == 0;
        prf[0][i] = prf[1][i] = prf[2][i] = 0.9;
    }
    struct kiln_metrics m = {.n = 20000, .loss = 0.5, .n_classes = N, .accuracy = 0.9,
                             .confusion = confusion, .precision = prf[0], .recall = prf[1],
                             .f1 = prf[2], .macro_f1 = 0.9};
    x.in.metrics = &m;
    x.in.n_classes = N;
    x.in.classes = classes;
    x.in.stats = NULL;
    char *html = write_and_read(&x.in, KILN_CARD_HTML, "many.html");
    ASSERT(html != NULL);
    ASSERT(balanced(html));
    ASSERT(no_nonfinite_text(html));
    ASSERT(strstr(html, "hover a cell for its count") != NULL); /* cells too small for text */
    ASSERT(strstr(html, "category number 119 with a long name &lt;119&gt;") != NULL);
    /* The matrix stays a sane size: its viewBox is at most a few thousand px. */
    const char *svg = strstr(html, "<title>Confusion matrix</title>");
    ASSERT(svg != NULL);
    const char *vb = svg;
    while (vb > html && strncmp(vb, "viewBox=\"", 9) != 0) vb--;
    double w = 0, h = 0;
    ASSERT(sscanf(vb, "viewBox=\"0 0 %lf %lf\"", &w, &h) == 2);
    ASSERT(w > 0 && w < 1200 && h > 0 && h < 1200);
    free(html);
}

/* --- failures ----------------------------------------------------------------------------------- */

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

TEST(write_failures)
{
    struct fixture x;
    fixture_init(&x);
    char dir[128], path[256];
    make_tmp_dir();
    snprintf(dir, sizeof dir, "%s/fail", tmp_dir);
    ASSERT(mkdir(dir, 0700) == 0);

    /* A folder that does not exist: io, naming the path, nothing written. */
    snprintf(path, sizeof path, "%s/missing/card.html", dir);
    const char *pp = path;
    ASSERT_STATUS(KILN_ERR_IO, kiln_card_write(&x.in, KILN_CARD_HTML, path), pp);
    ASSERT(access(path, F_OK) != 0);
    ASSERT_EQ_INT(0, dir_entries(dir));

    /* The target is a folder: the rename fails and the temp file goes. */
    snprintf(path, sizeof path, "%s/taken", dir);
    ASSERT(mkdir(path, 0700) == 0);
    ASSERT_STATUS(KILN_ERR_IO, kiln_card_write(&x.in, KILN_CARD_MARKDOWN, path), pp);
    ASSERT_EQ_INT(1, dir_entries(dir));
    rmdir(path);

    /* Writing twice replaces the card whole. */
    snprintf(path, sizeof path, "%s/card.md", dir);
    ASSERT_OK(kiln_card_write(&x.in, KILN_CARD_MARKDOWN, path));
    x.in.model_version = 4;
    ASSERT_OK(kiln_card_write(&x.in, KILN_CARD_MARKDOWN, path));
    char *md = read_all(path);
    ASSERT(md != NULL);
    ASSERT(strncmp(md, "# Model card: classifier v4\n", 28) == 0);
    free(md);
    ASSERT_EQ_INT(1, dir_entries(dir));
    remove(path);
    rmdir(dir);

    ASSERT_STATUS(KILN_ERR_USAGE, kiln_card_write(NULL, KILN_CARD_HTML, "x.html"), NULL);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_card_write(&x.in, (enum kiln_card_format)7, "x.html"),
                  NULL);
}

static void remove_tmp_dir(void)
{
    const char *names[] = {"card.md", "card.html", "reg.md", "reg.html", "bare.md",
                           "bare.html", "noepochs.html", "one.html", "nan.html", "many.html"};
    char path[256];
    if (!tmp_dir[0]) return;
    /* KILN_TEST_KEEP=1 keeps the cards to look at. */
    if (getenv("KILN_TEST_KEEP")) {
        fprintf(stderr, "cards kept in %s\n", tmp_dir);
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp_dir, names[i]);
        remove(path);
    }
    rmdir(tmp_dir);
}

int main(void)
{
    RUN(markdown_card);
    RUN(html_card);
    RUN(regression_card);
    RUN(empty_input);
    RUN(one_epoch_and_nan_curves);
    RUN(many_classes);
    RUN(write_failures);
    remove_tmp_dir();
    return test_summary();
}
