# The Docker image test: builds docker/Dockerfile for real with container-build (buildah, about
# 5-10 minutes: it compiles the daemon inside the image) and delivers one event through it.
# include()d from tests/CMakeLists.txt. It exits 77 (skipped) where container-build cannot run.
# Turn it off for quick local runs with -DAVR_WEBHOOKD_CONTAINER_TEST=OFF or `ctest -LE container`.
option(AVR_WEBHOOKD_CONTAINER_TEST "Build and test the Docker image in ctest" ON)
if(AVR_WEBHOOKD_CONTAINER_TEST)
  find_program(AVR_WEBHOOKD_BASH bash REQUIRED)
  add_test(NAME container_image
           COMMAND ${AVR_WEBHOOKD_BASH} ${CMAKE_CURRENT_LIST_DIR}/test_container.sh
                   ${PROJECT_SOURCE_DIR} $<TARGET_FILE:avr-webhookd>)
  # Alone: the image build takes both cores, which would starve tests with deadlines.
  set_tests_properties(container_image PROPERTIES
    LABELS "integration;container"
    SKIP_RETURN_CODE 77
    TIMEOUT 3600
    RUN_SERIAL TRUE)
endif()
