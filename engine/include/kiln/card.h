/* kiln/card.h: model cards, in Markdown and in HTML with inline SVG.
 *
 * The lifecycle layer gathers everything a card shows into struct
 * kiln_card_input (from the registry, the run, the dataset version and its
 * statistics); this module only lays it out.
 *
 *   struct kiln_card_input in = {...};
 *   kiln_card_write(&in, KILN_CARD_HTML, "card.html");
 */
#ifndef KILN_CARD_H
#define KILN_CARD_H

#include <stdint.h>

#include "kiln/config.h"
#include "kiln/nn.h"
#include "kiln/stats.h"
#include "kiln/status.h"

enum kiln_card_format { KILN_CARD_MARKDOWN, KILN_CARD_HTML };

/* One link of the lineage chain, oldest first: dataset version(s) with their
 * transforms and parents, run, checkpoint, model version, aliases. */
struct kiln_card_lineage {
    const char *kind;       /* "dataset", "run", "checkpoint", "model", "alias" */
    const char *label;      /* "fashion-mnist v2", "run:42", "classifier@3", "production" */
    const char *sha256;     /* the hash that pins it ("" when none) */
    const char *detail;     /* transforms, config summary, commit, ... ("" when none) */
};

/* Per-epoch training curves (from the run's metrics). */
struct kiln_card_epoch {
    int64_t epoch;
    double train_loss, val_loss, val_accuracy; /* NaN when absent */
};

struct kiln_card_input {
    const char *model_name;
    int64_t model_version;
    const char *model_sha256;
    const char *description;           /* registry description ("" when none) */
    const char *created;               /* ISO 8601 */
    const struct kiln_card_config *card; /* intended use, limitations ... from the config's card: */
    const char *config_yaml;           /* the training config as given */
    const char *dataset_name;
    const char *dataset_sha256;        /* content hash (version id) */
    const struct kiln_dataset_stats *stats; /* training data statistics (may be NULL) */
    int n_classes;
    char **classes;                    /* class names (may be NULL) */
    const struct kiln_metrics *metrics; /* evaluation (test split when there is one) */
    const char *metrics_split;         /* "test" */
    int n_epochs;
    const struct kiln_card_epoch *epochs;
    int n_lineage;
    const struct kiln_card_lineage *lineage;
};

/* Writes the card to path atomically (temp + rename). Text from the config
 * and names is escaped for HTML; the HTML is one self-contained file (no
 * scripts, no external resources) with the training curves and the
 * confusion matrix as inline SVG. */
enum kiln_status kiln_card_write(const struct kiln_card_input *in, enum kiln_card_format fmt,
                                 const char *path);

#endif
