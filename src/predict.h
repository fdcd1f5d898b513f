/* mneme predict: classify texts (or raw token ids) with a checkpoint. */
#ifndef MNEME_PREDICT_H
#define MNEME_PREDICT_H

int predict_main(int argc, char **argv);

#endif
